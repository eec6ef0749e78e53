"""RigClient: drive a running graph (sim rig, recorder, inference, learner) from a script or a test.

Owns one rclpy node spun by a background executor, so its methods block on service replies without
stalling subscriptions. Every wait has a timeout whose error names the node or service that is missing.
"""

from __future__ import annotations

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import LATCHED, STATUS, configure_dds_environment

# service name -> (type, node that provides it)
SERVICES = {
    "sim/reset": (Trigger, "sim_rig"),
    "sim/evaluate": (Trigger, "sim_rig"),
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
        self.node.create_subscription(String, "policy_active", self._on_policy_active, LATCHED)
        self.node.create_subscription(String, "inference/status", self._on_inference_status, STATUS)
        self.node.create_subscription(DiagnosticArray, "arm/status", self._on_arm_status, STATUS)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    # -- subscriptions -------------------------------------------------------------------------
    def _on_policy_active(self, msg: String) -> None:
        with self._lock:
            self.policy_active.append(conv.msg_json(msg))

    def _on_inference_status(self, msg: String) -> None:
        with self._lock:
            self.inference_status = conv.msg_json(msg)

    def _on_arm_status(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.arm_status = conv.status_of(msg)

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
