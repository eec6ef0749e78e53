"""Real-rig process: arm node + camera node over real drivers (WidowX/Interbotix, Franka/franky, RealSense,
OpenCV), configured from the rig config plus calibration/<rig>/<device>.yaml.

    calibration/<rig>/arm.yaml ─┐                         ┌─► ArmNode: action → safety → driver, joint_states, ...
    rig config (conf/rig/*.yaml)┼─► make_arm / make_camera ┼─► CameraNode: camera/<name>/image_raw (grabber threads)
    calibration/<rig>/<cam>.yaml┘                         └─► RigControlNode: arm fault → e-stop; arm/recover, arm/home

A driver fault (WidowX overload, motor hardware error, Franka reflex) engages the latched e-stop with the
fault as its reason; an operator clears the cause, calls arm/recover, then releases the e-stop.

Usage: python -m robot_stack.ros.rig_node rig=widowx [hydra overrides] [--ros-args ...]
"""

from __future__ import annotations

import inspect
import time

from rclpy.node import Node
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from robot_stack.ros.qos import LATCHED

# Limits a site calibrates for its own rig (calibration/<rig>/arm.yaml) on top of the rig config's `safety:`.
SITE_SAFETY_KEYS = ("workspace_min_m", "workspace_max_m", "max_joint_step_rad", "orientation_reference_rpy_rad",
                    "orientation_limits_rad")


def site_settings(rig) -> tuple[dict, dict[str, dict], dict]:
    """(arm settings, camera settings per name, safety) = rig config with calibration/<rig>/*.yaml on top."""
    arm, cams, safety, _ = _site(rig)
    return arm, cams, safety


def _site(rig) -> tuple[dict, dict[str, dict], dict, dict[str, dict]]:
    """site_settings + the calibrated intrinsics per camera (cameras without an `intrinsics` entry are left out)."""
    from omegaconf import OmegaConf

    from robot_stack.calibration.files import load_device

    calib_dir, max_age = str(rig.calibration_dir), float(rig.get("calibration_max_age_days", 30))
    arm_site = load_device(calib_dir, "arm", max_age)
    safety = OmegaConf.to_container(rig.safety, resolve=True)
    for k in SITE_SAFETY_KEYS:
        if arm_site.get(k) is not None:
            safety[k] = arm_site[k]
    skip = {"date", "residuals", "_path", *SITE_SAFETY_KEYS}
    arm = {**OmegaConf.to_container(rig.get("arm") or {}, resolve=True),
           **{k: v for k, v in arm_site.items() if k not in skip}}
    cams, intrinsics = {}, {}
    for name, c in rig.cameras.items():
        site = load_device(calib_dir, name, max_age)
        if isinstance(site.get("intrinsics"), dict):
            intrinsics[name] = site["intrinsics"]
        cam_skip = skip | {"intrinsics", "T_base_camera", "T_gripper_camera"}
        cams[name] = {**OmegaConf.to_container(c, resolve=True), **{k: v for k, v in site.items() if k not in cam_skip}}
    return arm, cams, safety, intrinsics


class RigControlNode(Node):
    """Fault → e-stop, and the operator's arm/recover and arm/home services."""

    def __init__(self, arm, cameras, controller, arm_node, namespace: str):
        super().__init__("rig", namespace=namespace)
        self.arm, self.cameras, self.controller, self.arm_node = arm, cameras, controller, arm_node
        self.pub_estop = self.create_publisher(Bool, "estop", LATCHED)
        self.create_service(Trigger, "arm/recover", self._on_recover)
        self.create_service(Trigger, "arm/home", self._on_home)
        self.create_timer(0.1, self._watch)

    def _watch(self) -> None:
        fault = getattr(self.arm, "fault", None)
        if fault and not self.controller.estopped:
            self.controller.set_estop(True, f"arm fault: {fault}")
            self.pub_estop.publish(Bool(data=True))
            self.get_logger().error(f"arm fault, e-stop engaged: {fault}")

    def _on_recover(self, req, resp):
        if not self.controller.estopped:
            resp.success, resp.message = False, "engage the e-stop before recovering (motors are rebooted)"
            return resp
        # No motion here: the e-stop stays engaged while motors reboot; homing is a separate, interruptible
        # arm/home after the operator releases the e-stop.
        recover = self.arm.recover
        msg = recover(home=False) if "home" in inspect.signature(recover).parameters else recover()
        resp.success, resp.message = getattr(self.arm, "fault", None) is None, msg
        return resp

    def _on_home(self, req, resp):
        c = self.controller
        if c.estopped or not c.enabled:
            resp.success, resp.message = False, ("release the e-stop and enable the arm (arm/enable) first: homing "
                                                 "is a move, and the e-stop must be able to interrupt it")
            return resp
        go_home = self.arm.go_home
        if "blocking" in inspect.signature(go_home).parameters:
            duration_s = go_home(blocking=False)
            c.begin_move("homing", duration_s, time.time_ns())
            resp.success, resp.message = True, f"homing ({duration_s:.1f} s); the e-stop interrupts it"
        else:  # a driver without a non-blocking home
            go_home()
            resp.success, resp.message = True, "at home pose"
        return resp

    def close(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        # Parking (the sleep-pose move) only on a clean stop with the e-stop released and no fault; every other
        # path (e-stop engaged, a driver fault, a crash) freezes where the arm is.
        park = not self.controller.estopped and not self.controller.fault and getattr(self.arm, "fault", None) is None
        disconnect = self.arm.disconnect
        if "park" in inspect.signature(disconnect).parameters:
            disconnect(park=park)
        else:
            if not park:
                self.arm.halt()
            disconnect()


def build(cfg):
    from robot_stack.arms.controller import ArmController
    from robot_stack.arms.factory import make_arm
    from robot_stack.arms.safety import SafetyConfig
    from robot_stack.cameras.factory import make_camera
    from robot_stack.ros.arm_node import ArmNode
    from robot_stack.ros.camera_node import CameraNode

    rig = cfg.rig
    if str(rig.driver) == "sim":
        raise ValueError(f"rig {rig.name} is simulated; start robot_stack.ros.sim_rig_node (profile sim_collect)")
    ns = str(rig.namespace)
    arm_settings, cam_settings, safety, intrinsics = _site(rig)
    sdk_node = None
    if str(rig.driver) == "widowx":
        # A node of our own for the Interbotix SDK, spun by the SDK's background executor (robot_startup), not
        # ours: its register reads are blocking service calls that would deadlock a single-threaded executor.
        sdk_node = Node("interbotix", namespace=ns)
    # Homing at connect would be a blocking move before the e-stop exists: the driver connects without it and
    # the controller runs it as an interruptible move (now if the rig starts enabled, else on arm/home).
    want_home = bool(arm_settings.get("go_home_on_connect", True))
    arm_settings = {**arm_settings, "go_home_on_connect": False}
    if str(rig.driver) == "franka":  # the driver limits its impedance reference to the same box
        arm_settings["safety"] = safety
    arm = make_arm(str(rig.driver), arm_settings, node=sdk_node)
    arm.connect()
    cameras = {name: make_camera(name, s) for name, s in cam_settings.items()}
    for cam in cameras.values():
        cam.connect()
    controller = ArmController(arm, SafetyConfig.from_mapping(safety),
                               start_enabled=bool(rig.get("start_enabled", True)))
    arm_node = ArmNode(controller, float(rig.control_hz), base_frame=f"{rig.robot}/base_link", namespace=ns)
    camera_node = CameraNode(cameras, {n: float(s["fps_hz"]) for n, s in cam_settings.items()}, namespace=ns,
                             intrinsics=intrinsics)
    control = RigControlNode(arm, cameras, controller, arm_node, namespace=ns)
    if want_home and controller.enabled and "blocking" in inspect.signature(arm.go_home).parameters:
        controller.begin_move("homing", arm.go_home(blocking=False), time.time_ns())
    elif want_home:
        controller.reason += "; then arm/home"
    arm_node.get_logger().info(f"rig {rig.name} up: driver={rig.driver} cameras="
                               f"{ {n: s['type'] for n, s in cam_settings.items()} } control={rig.control_hz} Hz")
    return [arm_node, camera_node, control]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "rig")


if __name__ == "__main__":
    raise SystemExit(main())
