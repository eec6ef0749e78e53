"""Deploy a policy: rig + recorder + inference node (every policy episode is recorded too).

    ros2 launch robot_stack_ros deploy.launch.py rig:=sim_widowx policy:=cube_in_bowl_bc [overrides:='...']

`policy:=` names a manifest in policies/ (robot_stack/policies/catalog.py) or a checkpoint directory.

Same graph as `robot-stack up sim_deploy` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.ros.launch_description, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from robot_stack.ros.launch_description import generate


def generate_launch_description():
    return generate("deploy", rig_args=True)
