"""`robot-stack` command line: one entry point, sub-commands dispatch lazily (no heavy import for --help).

    robot-stack demo [overrides]          a reset-free practice session on the simulated WidowX (demo.loop=bc:
                                          collect -> train -> deploy over ROS)
    robot-stack up <profile> [overrides]  start a profile's nodes (same graph as `ros2 launch`), Ctrl-C stops all
    robot-stack profiles                  list the profiles
    robot-stack config [overrides]        print the composed configuration (policy:=<name>: that recipe's)
    robot-stack sim <tasks|generate|view> simulation suite: task list, prior-data generator, montage PNGs
    robot-stack collect rig=... task=... episodes=N [device=keyboard]   teleoperated data collection
    robot-stack calibrate <workspace|home|intrinsics|handeye> rig=... [camera=front mode=...]   site calibration
    robot-stack cameras list              connected RealSense serials and V4L2 devices
    robot-stack store <command> ...       inspect/curate a trajectory store (robot-stack store --help)
    robot-stack learn learner=calql store=... [overrides]   offline pre-training + online fine-tuning (no ROS)
    robot-stack classifier <train|eval> ...   practice's success classifier from a store's (corrected) labels
    robot-stack dashboard [dashboard.port=8765] [overrides]   operator web page of a running rig (e-stop, episodes)

`robot-stack <command> --help` explains each command, its config groups and examples.
"""

from __future__ import annotations

import sys

USAGE = __doc__


# command -> module whose `main(argv) -> int` runs it; imported only when that command runs.
COMMANDS = {
    "demo": "robot_stack.cli.demo",
    "up": "robot_stack.cli.supervisor:up_main",
    "collect": "robot_stack.cli.collect",
    "calibrate": "robot_stack.cli.calibrate",
    "cameras": "robot_stack.cli.cameras",
    "store": "robot_stack.cli.store",
    "classifier": "robot_stack.cli.classifier",
    "learn": "robot_stack.learn.run",
    "dashboard": "robot_stack.ros.dashboard_node",
    "sim": "robot_stack.cli.sim",
    "profiles": "robot_stack.cli.main:_profiles",
    "config": "robot_stack.cli.main:_config",
}


def _profiles(argv: list[str]) -> int:
    from robot_stack.conf.profiles import available_profiles

    print("\n".join(available_profiles()))
    return 0


def _config(argv: list[str]) -> int:
    from omegaconf import OmegaConf

    from robot_stack.conf import load_config
    from robot_stack.policies.catalog import expand_recipe_args

    print(OmegaConf.to_yaml(load_config(expand_recipe_args(argv))))
    return 0


def main(argv: list[str] | None = None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
        return 2
    from robot_stack.cli.help import has_help, help_text, wants_help

    if has_help(cmd) and wants_help(rest):   # key=value commands: hydra would reject the flag as an override
        print(help_text(cmd))
        return 0
    module, _, func = COMMANDS[cmd].partition(":")
    run = getattr(importlib.import_module(module), func or "main")
    from robot_stack.errors import operator_errors

    try:
        return run(rest)
    except operator_errors() as e:
        # Bad names, paths, stores or checkpoints: the message names the fix; a traceback would bury it.
        print(f"[{cmd}] {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
