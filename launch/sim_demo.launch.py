"""The whole loop on the simulated WidowX 250s: sim rig, recorder, learner, inference node.

    ros2 launch robot_stack_ros sim_demo.launch.py [overrides:='task=take_cube_out_of_bowl']

Same graph as `robot-stack up sim_demo` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.ros.launch_description, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from robot_stack.ros.launch_description import generate


def generate_launch_description():
    return generate("sim_demo", rig_args=False)
