"""RigClient: drive a running graph (sim rig, recorder, inference, learner) from a script or a test.

Owns one rclpy node spun by a background executor, so its methods block on service replies without
stalling subscriptions. Every wait has a timeout whose error names the node or service that is missing.
"""

from __future__ import annotations

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import LATCHED, SENSOR, STATUS, configure_dds_environment

# service name -> (type, node that provides it)
SERVICES = {
    "sim/reset": (Trigger, "sim_rig"),
    "sim/evaluate": (Trigger, "sim_rig"),
    "sim/intervene": (Trigger, "sim_rig"),
    "teleop/enable": (SetBool, "sim_rig"),
    "estop": (SetBool, "sim_rig"),
    "recorder/start": (Trigger, "recorder"),
    "recorder/stop": (SetBool, "recorder"),
    "recorder/discard": (Trigger, "recorder"),
    "arm/recover": (Trigger, "rig"),
    "arm/home": (Trigger, "rig"),
    "inference/enable": (SetBool, "inference"),
}


class RigTimeout(TimeoutError):
    pass


class ArmStateReading:
    """One arm tick as seen on joint_states + ee_pose: names/positions (gripper opening included under
    conversions.GRIPPER_JOINT), ee pose xyz (m) + quaternion xyzw, and the capture stamp."""

    __slots__ = ("stamp_ns", "names", "positions", "ee_pose")

    def __init__(self, stamp_ns: int, names, positions, ee_pose):
        self.stamp_ns, self.names, self.positions, self.ee_pose = stamp_ns, tuple(names), tuple(positions), tuple(ee_pose)

    @classmethod
    def from_msgs(cls, js: JointState, pose: PoseStamped) -> ArmStateReading:
        p, o = pose.pose.position, pose.pose.orientation
        return cls(conv.time_to_ns(js.header.stamp), js.name, [float(v) for v in js.position],
                   [p.x, p.y, p.z, o.x, o.y, o.z, o.w])

    @property
    def arm_joints(self) -> tuple[list[str], list[float]]:
        """(joint names, positions rad) without the gripper entry."""
        keep = [i for i, n in enumerate(self.names) if n != conv.GRIPPER_JOINT]
        return [self.names[i] for i in keep], [self.positions[i] for i in keep]


class RigClient:
    def __init__(self, namespace: str, name: str = "conductor"):
        configure_dds_environment()
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._own_context = not rclpy.ok()
        if self._own_context:
            rclpy.init()
        self.node = Node(name, namespace=namespace)
        self._clients = {srv: self.node.create_client(t, srv) for srv, (t, _) in SERVICES.items()}
        self._lock = threading.Lock()
        self.policy_active: list[dict] = []  # every policy_active report, in order
        self.inference_status: dict = {}
        self.arm_status: dict = {}
        self.recorder_status: dict = {}
        self.node.create_subscription(String, "policy_active", self._on_policy_active, LATCHED)
        self.node.create_subscription(String, "recorder/status", self._on_recorder_status, STATUS)
        self.node.create_subscription(String, "inference/status", self._on_inference_status, STATUS)
        self.node.create_subscription(DiagnosticArray, "arm/status", self._on_arm_status, STATUS)
        # Arm state, joined by stamp (the arm node publishes joint_states and ee_pose with one stamp per tick).
        self.latest_state: ArmStateReading | None = None
        self.state_listeners: list = []  # called on the ROS thread with each joined ArmStateReading
        self._joints_by_stamp: dict[int, JointState] = {}
        self._pose_by_stamp: dict[int, PoseStamped] = {}
        self.node.create_subscription(JointState, "joint_states", self._on_joints, SENSOR)
        self.node.create_subscription(PoseStamped, "ee_pose", self._on_pose, SENSOR)
        self.latest_images: dict[str, tuple[int, object]] = {}  # camera -> (capture stamp ns, uint8 (H, W, 3))
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        import contextlib

        from rclpy.executors import ExternalShutdownException

        # The process is shutting down (SIGINT inside a node process that owns this client): not an error.
        with contextlib.suppress(ExternalShutdownException):
            self._executor.spin()

    # -- subscriptions -------------------------------------------------------------------------
    def _on_policy_active(self, msg: String) -> None:
        with self._lock:
            self.policy_active.append(conv.msg_json(msg))

    def _on_recorder_status(self, msg: String) -> None:
        with self._lock:
            self.recorder_status = conv.msg_json(msg)

    def wait_recorder_caught_up(self, executed_steps: int, timeout_s: float) -> bool:
        """Wait until the recorder has accounted (recorded or dropped) for `executed_steps` steps of the current
        episode: under load its queue may still hold executed actions when the arm has already stopped."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                st = dict(self.recorder_status)
            if st.get("recording") and int(st.get("steps", 0)) + int(st.get("dropped", 0)) >= executed_steps:
                return True
            time.sleep(0.05)
        return False

    def _on_inference_status(self, msg: String) -> None:
        with self._lock:
            self.inference_status = conv.msg_json(msg)

    def _on_arm_status(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.arm_status = conv.status_of(msg)

    def _on_joints(self, msg: JointState) -> None:
        self._join(conv.time_to_ns(msg.header.stamp), joints=msg)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._join(conv.time_to_ns(msg.header.stamp), pose=msg)

    def _join(self, stamp_ns: int, joints: JointState | None = None, pose: PoseStamped | None = None) -> None:
        if joints is not None:
            self._joints_by_stamp[stamp_ns] = joints
        if pose is not None:
            self._pose_by_stamp[stamp_ns] = pose
        if stamp_ns not in self._joints_by_stamp or stamp_ns not in self._pose_by_stamp:
            # Best-effort topics lose a message now and then: keep only the last few unmatched halves.
            for d in (self._joints_by_stamp, self._pose_by_stamp):
                while len(d) > 8:
                    d.pop(next(iter(d)))
            return
        reading = ArmStateReading.from_msgs(self._joints_by_stamp.pop(stamp_ns), self._pose_by_stamp.pop(stamp_ns))
        with self._lock:
            self.latest_state = reading
        for listener in list(self.state_listeners):
            listener(reading)

    def subscribe_camera(self, camera: str) -> None:
        """Keep the newest frame of camera/<camera>/image_raw in latest_images[camera] (calibration)."""
        def on_image(msg: Image) -> None:
            image = conv.msg_to_image(msg)
            with self._lock:
                self.latest_images[camera] = (conv.time_to_ns(msg.header.stamp), image)

        self.node.create_subscription(Image, f"camera/{camera}/image_raw", on_image, SENSOR)

    def wait_state(self, timeout_s: float, check=None) -> ArmStateReading:
        """The newest joined arm state; RigTimeout naming the arm node if none arrives."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check is not None:
                check()
            with self._lock:
                if self.latest_state is not None:
                    return self.latest_state
            time.sleep(0.05)
        raise RigTimeout(f"no joint_states + ee_pose within {timeout_s:.0f} s; is the arm (or sim_rig) node running?")

    # -- services ------------------------------------------------------------------------------
    def wait_ready(self, services, timeout_s: float, check=None) -> None:
        """Wait until every named service is up; `check()` is called meanwhile (e.g. Supervisor.check)."""
        deadline = time.monotonic() + timeout_s
        missing = list(services)
        while missing and time.monotonic() < deadline:
            if check is not None:
                check()
            missing = [s for s in missing if not self._clients[s].service_is_ready()]
            time.sleep(0.1)
        if missing:
            who = sorted({SERVICES[s][1] for s in missing})
            raise RigTimeout(f"services {missing} did not come up within {timeout_s:.0f} s; "
                             f"check the log of node(s) {who}")

    def call(self, service: str, data: bool | None = None, timeout_s: float = 10.0):
        t, owner = SERVICES[service]
        req = t.Request()
        if data is not None:
            req.data = bool(data)
        fut = self._clients[service].call_async(req)
        done = threading.Event()
        fut.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            raise RigTimeout(f"{service} did not answer within {timeout_s:.0f} s; is node {owner!r} alive?")
        return fut.result()

    def call_json(self, service: str, data: bool | None = None, timeout_s: float = 10.0) -> dict:
        resp = self.call(service, data, timeout_s)
        try:
            payload = json.loads(resp.message)
        except json.JSONDecodeError:
            payload = {"message": resp.message}
        payload.setdefault("ok", bool(resp.success))
        return payload

    def wait_policy_version(self, min_version: int, timeout_s: float, check=None) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check is not None:
                check()
            with self._lock:
                for report in reversed(self.policy_active):
                    if report.get("status") == "ok" and int(report.get("version", 0)) >= min_version:
                        return report
            time.sleep(0.2)
        raise RigTimeout(f"no policy version >= {min_version} became active within {timeout_s:.0f} s; "
                         "check the learner and inference node logs")

    def close(self) -> None:
        import rclpy

        self._executor.shutdown()
        self.node.destroy_node()
        if self._own_context and rclpy.ok():
            rclpy.try_shutdown()
