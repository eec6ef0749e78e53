"""The one body behind every `launch/*.launch.py`: a profile becomes launch_ros Node actions.

Both start paths read the same profile through `robot_stack.conf.profiles` (`launch_nodes` here), so
`ros2 launch` and `robot-stack up` cannot drift. `launch`/`launch_ros` are imported inside the functions: they exist
only on a real ROS 2 install, never in the pip environment.
"""

from __future__ import annotations

import os

from robot_stack.conf.profiles import DEFAULT_RIG, launch_nodes


def _node_actions(context, launch: str, rig_args: bool):
    from launch.actions import Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    # Launch args are only known as strings at launch time, and the profile decides which nodes exist,
    # so the Node actions are built in an OpaqueFunction.
    extra = {}
    if rig_args:
        extra = {"rig": LaunchConfiguration("rig").perform(context),
                 "policy": LaunchConfiguration("policy").perform(context)}
    _, nodes = launch_nodes(launch, overrides=LaunchConfiguration("overrides").perform(context).split(), **extra)
    # No `name=`: launch_ros would pass `-r __node:=<name>`, which renames EVERY rclpy node in the
    # process (the sim rig composes arm, cameras and sim nodes in one process) to the same name. The
    # supervisor does not rename either; the namespace remap is the same in both.
    return [
        Node(
            package=n.package,
            executable=n.executable,
            namespace=n.namespace,
            arguments=list(n.arguments),
            # SROS2: with ROS_SECURITY_ENABLE=true each node runs in its enclave /robot_stack/<name>, as under
            # the supervisor (robot_stack/conf/profiles.py node_command).
            ros_arguments=(["--enclave", f"/robot_stack/{n.name}"]
                           if str({**os.environ, **n.env}.get("ROS_SECURITY_ENABLE", "")).lower() == "true" else []),
            additional_env=dict(n.env),
            output="screen",
            respawn=n.respawn,
            respawn_delay=n.respawn_delay_s,
            # A required node that exits ends the launch, like the supervisor stopping everything (a respawned
            # one is restarted instead, as under the supervisor).
            on_exit=Shutdown(reason=f"required node {n.name} exited") if n.required and not n.respawn else None,
        )
        for n in nodes
    ]


def generate(launch: str, rig_args: bool):
    """LaunchDescription for launch file `launch` (collect | deploy | sim_demo)."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    args = []
    if rig_args:
        args = [
            DeclareLaunchArgument("rig", default_value=DEFAULT_RIG,
                                  description="sim_widowx | widowx | franka (real rigs read calibration/<rig>/); sim_franka later"),
            DeclareLaunchArgument("policy", default_value="",
                                  description="policy to deploy: a manifest name in policies/ (or its path), or a "
                                              "checkpoint directory; for the inference node (profiles without "
                                              "one reject it)"),
        ]
    args.append(DeclareLaunchArgument("overrides", default_value="",
                                      description="space-separated hydra overrides: key=value for every node, "
                                                  "<node>.key=value for one node"))
    return LaunchDescription([*args, OpaqueFunction(function=_node_actions, args=[launch, rig_args])])
