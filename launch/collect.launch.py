"""Collect demonstrations: rig + recorder (teleop or the sim's scripted expert drives the arm).

    ros2 launch robot_stack_ros collect.launch.py rig:=sim_widowx [policy:=...] [overrides:='task=...']

Same graph as `robot-stack up sim_collect` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.cli.profiles.launch_nodes, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_stack.cli.profiles import DEFAULT_RIG, launch_nodes

LAUNCH = "collect"


def _nodes(context, *args, **kwargs):
    # OpaqueFunction: launch args are only known as strings at launch time, and the profile decides
    # which nodes exist, so the Node actions are built here.
    _, nodes = launch_nodes(
        LAUNCH,
        rig=LaunchConfiguration("rig").perform(context),
        policy=LaunchConfiguration("policy").perform(context),
        overrides=LaunchConfiguration("overrides").perform(context).split(),
    )
    # No `name=`: launch_ros would pass `-r __node:=<name>`, which renames EVERY rclpy node in the
    # process (the sim rig composes arm, cameras and sim nodes in one process) to the same name. The
    # supervisor does not rename either; the namespace remap is the same in both.
    return [
        Node(
            package=n.package,
            executable=n.executable,
            namespace=n.namespace,
            arguments=list(n.arguments),
            additional_env=dict(n.env),
            output="screen",
            # A required node that exits ends the launch, like the supervisor stopping everything.
            on_exit=Shutdown(reason=f"required node {n.name} exited") if n.required else None,
        )
        for n in nodes
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("rig", default_value=DEFAULT_RIG,
                              description="sim_widowx (runnable now); widowx | franka | sim_franka later"),
        DeclareLaunchArgument("policy", default_value="",
                              description="policy to deploy; becomes inference.policy=<value> for the "
                                          "inference node (profiles without one reject it)"),
        DeclareLaunchArgument("overrides", default_value="",
                              description="space-separated hydra overrides: key=value for every node, "
                                          "<node>.key=value for one node"),
        OpaqueFunction(function=_nodes),
    ])
