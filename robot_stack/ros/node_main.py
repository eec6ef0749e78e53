"""Shared `main()` plumbing for every node process: DDS env, rclpy init, hydra config, spin, clean exit."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from robot_stack.ros.qos import configure_dds_environment


def run_nodes(build: Callable[[object], Sequence[object]], argv: Sequence[str] | None, what: str) -> int:
    """Init rclpy, compose the config from the non-ROS args, build the node(s), spin until shutdown.

    `build(cfg)` returns the nodes to spin in one single-threaded executor: nodes composed in one
    process (the sim rig) then never touch shared state (the MuJoCo model) from two threads.
    Returns the process exit code: 0 on Ctrl-C / external shutdown, 1 on an error (logged with the fix).
    """
    configure_dds_environment()
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from robot_stack.conf import load_config
    from robot_stack.errors import operator_errors

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    rclpy.init(args=["robot_stack", *argv])
    nodes: Sequence[object] = ()
    try:
        overrides = rclpy.utilities.remove_ros_args(["robot_stack", *argv])[1:]
        cfg = load_config(overrides)
        nodes = build(cfg)
        executor = SingleThreadedExecutor()
        for n in nodes:
            executor.add_node(n)
        executor.spin()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except operator_errors() as e:
        print(f"[{what}] {e}", file=sys.stderr)
        return 2
    except Exception:
        logging.getLogger(what).exception("%s failed; the traceback above names the cause", what)
        return 1
    finally:
        for n in nodes:
            close = getattr(n, "close", None)
            if close is not None:
                close()
            n.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
