"""Arm node: `action` in, safety layer + watchdog + e-stop, `action_executed` / `joint_states` / `ee_pose` out.

Thin adapter over `robot_stack.arms.controller.ArmController` (all the safety logic, tested without ROS).
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from robot_stack.arms.controller import ArmController, CommandRejected
from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import COMMAND, LATCHED, RECORD_COMMAND, SENSOR, STATUS


class ArmNode(Node):
    def __init__(self, controller: ArmController, control_hz: float, base_frame: str, namespace: str):
        super().__init__("arm", namespace=namespace)
        self.controller = controller
        self.base_frame = base_frame
        # Deep, reliable queue: the recorder records this topic, and a reliable writer with a short
        # KEEP_LAST history overwrites samples a momentarily slow reader has not acknowledged yet.
        self.pub_executed = self.create_publisher(JointState, "action_executed", RECORD_COMMAND)
        self.pub_joints = self.create_publisher(JointState, "joint_states", SENSOR)
        self.pub_pose = self.create_publisher(PoseStamped, "ee_pose", SENSOR)
        self.pub_status = self.create_publisher(DiagnosticArray, "arm/status", STATUS)
        self.pub_estop = self.create_publisher(Bool, "estop", LATCHED)
        self.create_subscription(JointState, "action", self._on_action, COMMAND)
        self.create_subscription(Bool, "estop", self._on_estop_topic, LATCHED)
        self.create_service(SetBool, "estop", self._on_estop_srv)
        self.create_service(SetBool, "arm/enable", self._on_enable_srv)
        self.state_listeners = []  # in-process listeners (the sim expert) called after each new state
        self.create_timer(1.0 / control_hz, self._tick)
        self._last_reject_log_ns = 0
        self.publish_state()

    def _on_action(self, msg: JointState) -> None:
        names, values, stamp_ns, source = conv.msg_to_action(msg)
        try:
            self.controller.submit(names, values, stamp_ns, time.time_ns(), source)
        except CommandRejected as e:
            now = time.time_ns()
            if now - self._last_reject_log_ns > 1e9:  # one line a second, not one per message
                self.get_logger().warning(f"rejected command: {e}")
                self._last_reject_log_ns = now
            self._publish_status(self.controller.reason)

    def _tick(self) -> None:
        executed = self.controller.tick(time.time_ns())
        if executed is not None:
            self.pub_executed.publish(conv.action_to_msg(
                self.controller.arm.action_names, executed.action, executed.stamp_ns, executed.source))
        self.publish_state()
        self._publish_status(self.controller.reason)

    def publish_state(self) -> None:
        state = self.controller.arm.get_state()
        js, pose = conv.arm_state_msgs(state, self.base_frame)
        self.pub_joints.publish(js)
        self.pub_pose.publish(pose)
        for listener in self.state_listeners:
            listener(state)

    def _publish_status(self, reason: str) -> None:
        c = self.controller
        self.pub_status.publish(conv.status_msg("arm", c.status, reason, time.time_ns(),
                                                {"executed": c.n_executed, "rejected": c.n_rejected,
                                                 "last_rejection": c.last_rejection, "enabled": c.enabled,
                                                 "cmd_over_limit": c.cmd_over_limit,
                                                 "cmd_max_step_m": round(c.cmd_max_step_m, 5),
                                                 "cmd_max_step_rad": round(c.cmd_max_step_rad, 5),
                                                 "cmd_max_box_excess_m": round(c.cmd_max_box_excess_m, 5)}))

    def _on_estop_topic(self, msg: Bool) -> None:
        # The topic can only ENGAGE: any node or button may stop the arm, but a stray Bool(false) from any
        # host on the domain must not release it. Release is the service (below), logged.
        if bool(msg.data) and not self.controller.estopped:
            self.controller.set_estop(True, "e-stop topic", caller="estop topic")
            self._publish_status(self.controller.reason)
        elif not msg.data and self.controller.estopped:
            self.get_logger().warning("ignored Bool(false) on the estop topic: release only through the estop "
                                      "service (std_srvs/SetBool data=false)")

    def _on_estop_srv(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        engage = bool(req.data)
        self.controller.set_estop(engage, "e-stop service", caller="estop service")
        self.pub_estop.publish(Bool(data=engage))  # latched, so late joiners see the stop too
        # One severity per call site: rclpy refuses to change a call site's severity between calls.
        self.get_logger().warning(f"e-stop {'engaged' if engage else 'RELEASED'} through the estop service")
        self._publish_status(self.controller.reason)
        resp.success, resp.message = True, self.controller.status
        return resp

    def _on_enable_srv(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        self.controller.set_enabled(bool(req.data), caller="arm/enable service")
        self.get_logger().warning(f"arm {'enabled' if req.data else 'disabled'} through arm/enable")
        self._publish_status(self.controller.reason)
        resp.success, resp.message = True, self.controller.status
        return resp
