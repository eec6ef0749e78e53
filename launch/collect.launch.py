"""Collect demonstrations: rig + recorder (teleop or the sim's scripted expert drives the arm).

    ros2 launch robot_stack_ros collect.launch.py rig:=sim_widowx [policy:=...] [overrides:='task=...']

Same graph as `robot-stack up sim_collect` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.ros.launch_description, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from robot_stack.ros.launch_description import generate


def generate_launch_description():
    return generate("collect", rig_args=True)
