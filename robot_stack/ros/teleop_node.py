"""Teleop node: reads a teleop device once per arm state and publishes `action` stamped with that state's
stamp (the observation the person reacted to), source tag `teleop:<device>` in header.frame_id.

    joint_states ──► device.read() ──► events ──► TeleopLink.events (collect session)
                                  └─► action (only while link.live) ──► arm node

Usage: python -m robot_stack.ros.teleop_node +teleop=spacemouse [rig=widowx] [--ros-args ...]
(standalone it is always live; `robot-stack collect` runs it in-process and switches it per episode).
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import JointState

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import COMMAND, SENSOR
from robot_stack.teleop.session import TeleopLink


class TeleopNode(Node):
    def __init__(self, device, action_names, namespace: str, link: TeleopLink | None = None):
        super().__init__("teleop", namespace=namespace)
        self.device, self.action_names = device, tuple(action_names)
        self.source = f"teleop:{device.name}"
        self.link = link or TeleopLink()
        if link is None:
            self.link.set_live(True)
        self.pub = self.create_publisher(JointState, "action", COMMAND)
        self.create_subscription(JointState, "joint_states", self._on_state, SENSOR)

    def _on_state(self, msg: JointState) -> None:
        stamp_ns = conv.time_to_ns(msg.header.stamp)
        if stamp_ns <= self.link.last_state_ns:
            return  # one device read per arm tick
        self.link.last_state_ns = stamp_ns
        sample = self.device.read()
        for ev in sample.events:
            self.link.events.put(ev)
            self.link.stamped_events.put((ev, stamp_ns))
        if self.link.live:
            self.pub.publish(conv.action_to_msg(self.action_names, sample.action, stamp_ns, self.source))
            self.link.steps_published += 1

    def close(self) -> None:
        self.device.disconnect()


class TeleopThread:
    """A TeleopNode spun by its own executor thread (used in-process by `robot-stack collect`)."""

    def __init__(self, device, action_names, namespace: str, link: TeleopLink):
        import threading

        from rclpy.executors import SingleThreadedExecutor

        self.node = TeleopNode(device, action_names, namespace, link)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="teleop", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self.node.close()
        self.node.destroy_node()


def build(cfg):
    from robot_stack.teleop.factory import make_teleop
    from robot_stack.types import ACTION_SPACES

    if "teleop" not in cfg:
        raise ValueError("no teleop device configured: pass +teleop=keyboard|spacemouse|gamepad|replay")
    t = cfg.teleop
    device = make_teleop(str(t.device), float(t.max_step_m), float(t.max_step_rad), str(t.get("path", "")))
    device.connect()
    node = TeleopNode(device, ACTION_SPACES[str(cfg.rig.action_space)], namespace=str(cfg.rig.namespace))
    node.get_logger().info(f"teleop {t.device} publishing {node.source} actions")
    return [node]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "teleop")


if __name__ == "__main__":
    raise SystemExit(main())
