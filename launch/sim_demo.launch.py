"""The whole loop on the simulated WidowX 250s: sim rig, recorder, learner, inference node.

    ros2 launch robot_stack_ros sim_demo.launch.py [overrides:='task=take_cube_out_of_bowl']

Same graph as `robot-stack up sim_demo` (robot_stack/cli/supervisor.py): both read the profile
robot_stack/conf/profile/<profile>.yaml through robot_stack.cli.profiles.launch_nodes, so they cannot drift.
Needs robot_stack pip-installed into the ROS Python environment (`pip install -e <repo>[learn,sim]`).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_stack.cli.profiles import launch_nodes

LAUNCH = "sim_demo"


def _nodes(context, *args, **kwargs):
    # OpaqueFunction: launch args are only known as strings at launch time, and the profile decides
    # which nodes exist, so the Node actions are built here.
    _, nodes = launch_nodes(
        LAUNCH,
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
        DeclareLaunchArgument("overrides", default_value="",
                              description="space-separated hydra overrides: key=value for every node, "
                                          "<node>.key=value for one node"),
        OpaqueFunction(function=_nodes),
    ])
