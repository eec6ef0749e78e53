"""`robot-stack` command line: one entry point, sub-commands dispatch lazily (no heavy import for --help).

    robot-stack demo [overrides]          the whole loop on the simulated WidowX (collect -> train -> deploy)
    robot-stack up <profile> [overrides]  start a profile's nodes (same graph as `ros2 launch`), Ctrl-C stops all
    robot-stack profiles                  list the profiles
    robot-stack config [overrides]        print the composed configuration
    robot-stack sim <tasks|generate|view> simulation suite: task list, prior-data generator, montage PNGs
    robot-stack collect rig=... task=... episodes=N [device=keyboard]   teleoperated data collection
    robot-stack calibrate <workspace|home|intrinsics|handeye> rig=... [camera=front mode=...]   site calibration
    robot-stack cameras list              connected RealSense serials and V4L2 devices
    robot-stack store <command> ...       inspect/curate a trajectory store (robot-stack store --help)
    robot-stack learn learner=calql store=... [overrides]   offline pre-training + online fine-tuning (no ROS)
"""

from __future__ import annotations

import sys

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from robot_stack.cli.demo import main as demo_main
        from robot_stack.errors import operator_errors

        try:
            return demo_main(rest)
        except operator_errors() as e:
            print(f"[demo] {e}", file=sys.stderr)
            return 2
    if cmd == "up":
        from robot_stack.cli.supervisor import up_main

        return up_main(rest)
    if cmd == "learn":
        from robot_stack.errors import operator_errors
        from robot_stack.learn.run import main as learn_main

        try:
            return learn_main(rest)
        except operator_errors() as e:
            print(f"[learn] {e}", file=sys.stderr)
            return 2
    if cmd == "store":
        from robot_stack.cli.store import main as store_main

        return store_main(rest)
    if cmd == "cameras":
        from robot_stack.cli.cameras import main as cameras_main

        return cameras_main(rest)
    if cmd == "collect":
        from robot_stack.cli.collect import main as collect_main
        from robot_stack.errors import operator_errors

        try:
            return collect_main(rest)
        except operator_errors() as e:
            print(f"[collect] {e}", file=sys.stderr)
            return 2
    if cmd == "calibrate":
        from robot_stack.cli.calibrate import main as calibrate_main
        from robot_stack.errors import operator_errors

        try:
            return calibrate_main(rest)
        except operator_errors() as e:
            print(f"[calibrate] {e}", file=sys.stderr)
            return 2
    if cmd == "profiles":
        from robot_stack.cli.profiles import available_profiles

        print("\n".join(available_profiles()))
        return 0
    if cmd == "sim":
        from robot_stack.cli.sim import main as sim_main

        return sim_main(rest)
    if cmd == "config":
        from omegaconf import OmegaConf

        from robot_stack.conf import ConfigError, load_config

        try:
            print(OmegaConf.to_yaml(load_config(rest)))
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 2
        return 0
    print(f"unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
