"""Dashboard bridge node: the one place where the operator page meets ROS (robot_stack/dashboard has no rclpy).

    arm/status, joint_states + ee_pose, estop ─┐
    camera/<name>/image_raw (thumbnail rate) ──┤
    practice/status, learner/status,           ├─► DashboardHub ◄── FastAPI + uvicorn (thread in this process)
    inference/status, policy_active ───────────┘        │
    estop (SetBool), inference/rollback (Trigger) ◄─────┘ commands, drained on this node's thread
                                                          (woken by a guard condition: no polling delay)

Engaging the e-stop goes to the arm node's `estop` service; if that service is not up, or does not answer within
ESTOP_TOPIC_FALLBACK_S, the stop is also published on the `estop` topic (which can only engage), so a stop
is never lost to a slow service. Release and rollback are services only.

Usage: python -m robot_stack.ros.dashboard_node [dashboard.host=... dashboard.port=... store=... rig=...]
"""

from __future__ import annotations

import os
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import LATCHED, SENSOR, STATUS

ESTOP_TOPIC_FALLBACK_S = 0.3  # longer than a service round trip on a loaded rig PC, shorter than a person reacts


class DashboardNode(Node):
    def __init__(self, hub, cameras, namespace: str):
        super().__init__("dashboard", namespace=namespace)
        self.hub = hub
        self.server = None  # DashboardServer, stopped in close()
        self.store = None
        self._joints: JointState | None = None
        self.create_subscription(DiagnosticArray, "arm/status", lambda m: hub.put_arm_status(conv.status_of(m)), STATUS)
        self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR)
        self.create_subscription(PoseStamped, "ee_pose", self._on_pose, SENSOR)
        self.create_subscription(Bool, "estop", lambda m: hub.put_estop(bool(m.data)), LATCHED)
        for cam in cameras:
            self.create_subscription(Image, f"camera/{cam}/image_raw", lambda m, cam=cam: self._on_image(cam, m), SENSOR)
        for topic, put in (("practice/status", hub.put_practice), ("learner/status", hub.put_learner),
                           ("inference/status", hub.put_inference)):
            self.create_subscription(String, topic, lambda m, put=put, topic=topic: self._on_json(topic, m, put), STATUS)
        self.create_subscription(String, "policy_active", lambda m: self._on_json("policy_active", m,
                                                                                  hub.put_policy_active), LATCHED)
        self.estop_client = self.create_client(SetBool, "estop")
        self.rollback_client = self.create_client(Trigger, "inference/rollback")
        self.pub_estop = self.create_publisher(Bool, "estop", LATCHED)
        self._wake = self.create_guard_condition(self._drain_commands)
        hub.set_waker(self._wake.trigger)  # trigger() is safe from the web server's threads
        self.create_timer(0.5, self._drain_commands)  # also marks the bridge alive for the page

    # -- topics -> hub ----------------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        self._joints = msg

    def _on_pose(self, msg: PoseStamped) -> None:
        if self._joints is None:
            return
        p, o = msg.pose.position, msg.pose.orientation
        self.hub.put_arm_state(self._joints.name, self._joints.position, [p.x, p.y, p.z, o.x, o.y, o.z, o.w],
                               conv.time_to_ns(msg.header.stamp))

    def _on_image(self, camera: str, msg: Image) -> None:
        if not self.hub.camera_due(camera):
            return  # most frames: skip the conversion entirely
        try:
            self.hub.put_camera_frame(camera, conv.msg_to_image(msg), conv.time_to_ns(msg.header.stamp))
        except conv.MessageError as e:
            self.get_logger().warning(f"camera/{camera}: {e}", throttle_duration_sec=10.0)

    def _on_json(self, topic: str, msg: String, put) -> None:
        try:
            put(conv.msg_json(msg))
        except conv.MessageError as e:
            self.get_logger().warning(f"ignored {topic}: {e}", throttle_duration_sec=10.0)

    # -- hub commands -> services -----------------------------------------------------------------
    def _drain_commands(self) -> None:
        for cmd in self.hub.take_commands():
            if cmd.kind == "estop_engage":
                self._engage(cmd)
            elif cmd.kind == "estop_release":
                self._call(self.estop_client, SetBool.Request(data=False), cmd, "estop")
            elif cmd.kind == "rollback":
                self._call(self.rollback_client, Trigger.Request(), cmd, "inference/rollback")

    def _call(self, client, request, cmd, service: str) -> None:
        if not client.service_is_ready():
            cmd.finish(False, f"{service} service is not available: is its node running in this graph "
                              f"(namespace {self.get_namespace()}, same ROS_DOMAIN_ID)?")
            return
        self.get_logger().warning(f"dashboard operator: calling {service} ({cmd.kind})")
        fut = client.call_async(request)
        fut.add_done_callback(lambda f: cmd.finish(f.result().success, f.result().message)
                              if f.exception() is None else cmd.finish(False, f"{service} failed: {f.exception()}"))

    def _engage(self, cmd) -> None:
        self.get_logger().warning("dashboard operator: e-stop ENGAGE")
        if not self.estop_client.service_is_ready():
            self.pub_estop.publish(Bool(data=True))
            cmd.finish(True, "estop service not available; engaged through the estop topic")
            return
        fut = self.estop_client.call_async(SetBool.Request(data=True))
        # A failed call leaves the command open: the fallback below then engages through the topic.
        fut.add_done_callback(lambda f: cmd.finish(f.result().success, f.result().message)
                              if f.exception() is None and f.result().success else None)
        sent_s = time.monotonic()

        def fallback():
            timer.cancel()
            if not cmd.done:  # no (successful) answer yet
                self.get_logger().error(f"estop service did not answer within {time.monotonic() - sent_s:.2f} s; "
                                        "engaging through the estop topic")
                self.pub_estop.publish(Bool(data=True))
                cmd.finish(True, "estop service slow; engaged through the estop topic")

        timer = self.create_timer(ESTOP_TOPIC_FALLBACK_S, fallback)

    def close(self) -> None:
        self.hub.set_waker(None)
        if self.server is not None:
            self.server.stop()
        if self.store is not None:
            self.store.close()


def build(cfg):
    from robot_stack.dashboard.app import DashboardSecurity, DashboardServer, create_app
    from robot_stack.dashboard.hub import DashboardHub
    from robot_stack.dashboard.store_view import StoreView

    d = cfg.dashboard
    security = DashboardSecurity(str(d.host), str(d.token or os.environ.get("ROBOT_STACK_DASHBOARD_TOKEN", "")))
    cameras = tuple(cfg.rig.cameras)
    hub = DashboardHub(cameras, thumbnail_hz=float(d.thumbnail_hz), thumbnail_px=int(d.thumbnail_px))
    node = DashboardNode(hub, cameras, str(cfg.rig.namespace))
    node.store = StoreView(str(cfg.store))
    node.server = DashboardServer(create_app(hub, node.store, str(cfg.checkpoints), security), str(d.host), int(d.port))
    url = node.server.start()
    node.get_logger().info(f"dashboard at {url} (rig {cfg.rig.name}, store {cfg.store}; token "
                           f"{'required for release/rollback/edits' if security.token_required else 'not needed on loopback'})")
    return [node]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "dashboard")


if __name__ == "__main__":
    raise SystemExit(main())
