"""Reset-free practice: rig + recorder + Cal-QL learner + inference + practice node (+ dashboard).

    ros2 launch robot_stack_ros practice.launch.py rig:=sim_widowx overrides:='task=put_cube_in_bowl practice.judge=<dir>'

`practice.judge` names a success-classifier checkpoint directory (robot_stack/practice/classifier), or
`ground_truth` in sim (an oracle control). Services practice/start|pause|resume|stop|intervention, status on
practice/status. Same graph as `robot-stack up sim_practice` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.ros.launch_description, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from robot_stack.ros.launch_description import generate


def generate_launch_description():
    return generate("practice", rig_args=True)
