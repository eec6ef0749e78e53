"""Franka (FR3, and Panda with a matching libfranka) through franky-control.

    send_action(ee_delta) ──► reference += clamp(delta, per-step limit) ──► clip to measured ± max offset
                                                                             ──► CartesianImpedanceTracker.set_target
    reflex / ControlException ──► fault (the rig node e-stops) ──► recover(): recover_from_errors + restart tracker

The 1 kHz torque loop runs in franky's C++ thread; Python only moves the impedance reference at 10–15 Hz.
Two limits keep a bad command from becoming a violent motion (SERL's reference-limited impedance):
the reference moves at most `max_step_m`/`max_step_rad` per call, and never further than
`max_reference_offset_m` from where the arm actually is (a blocked arm does not wind up a spring).

Versions: franky-control and pylibfranka wheels bundle an FR3 libfranka (>= 0.10, robot server 5+).
An older Panda (system version 4.x, libfranka < 0.10) cannot use them: build franky from source against
libfranka 0.9.x, or use panda-python (panda_py) there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from robot_stack.arms import poses
from robot_stack.arms.arm import ARMS, Arm, ArmState
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

log = logging.getLogger(__name__)
JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))


@dataclass(frozen=True)
class FrankaConfig:
    """`ip` and the home pose are site values: they come from calibration/<rig>/arm.yaml."""

    ip: str
    home_joints_rad: tuple[float, ...]
    # Cartesian impedance (N/m, Nm/rad); franky's documented defaults. max_delta_tau limits the torque
    # rate (Nm per 1 ms tick) so a target jump cannot produce a torque step (a reflex trigger).
    translational_stiffness: float = 1200.0
    rotational_stiffness: float = 80.0
    max_delta_tau: float = 0.5
    # Per-step reference limits (12.5 Hz: 2 cm/step = 0.25 m/s).
    max_step_m: float = 0.02
    max_step_rad: float = 0.1
    max_reference_offset_m: float = 0.05
    # Homing with franky's Ruckig joint motion at this fraction of the robot's velocity/accel/jerk limits.
    homing_dynamics_factor: float = 0.1
    gripper_speed_mps: float = 0.1
    gripper_force_n: float = 20.0
    gripper_max_width_m: float = 0.08
    go_home_on_connect: bool = True

    @classmethod
    def from_mapping(cls, m) -> FrankaConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(m) - known
        if unknown:
            raise ValueError(f"unknown Franka settings {sorted(unknown)}; known: {sorted(known)}")
        if not m.get("ip"):
            raise ValueError("the Franka driver needs the robot's IP: set `ip` in calibration/<rig>/arm.yaml")
        kw = dict(m)
        kw["home_joints_rad"] = tuple(float(x) for x in m.get("home_joints_rad", ()))
        if len(kw["home_joints_rad"]) != 7:
            raise ValueError("home_joints_rad needs 7 values (calibration/<rig>/arm.yaml; capture it with teleop)")
        return cls(**kw)


def _import_franky():
    try:
        import franky
    except ImportError as e:
        raise ImportError("the Franka driver needs franky-control (`pip install robot_stack[franka]`), or use "
                          "rig.driver=fake_franky to run without hardware") from e
    return franky


@ARMS.register("franka")
class Franka(Arm):
    name = "franka"
    action_space = "ee_delta"

    def __init__(self, config: FrankaConfig, node=None, sdk=None):
        self.config = config
        self._sdk = sdk  # the franky module (or fake_franky); imported lazily in connect()
        self.robot = self.gripper = self.tracker = None
        self.fault: str | None = None
        self._reference: np.ndarray | None = None  # (4, 4) current impedance target
        self._gripper_open = True
        self._gripper_sent = False

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINTS

    def connect(self) -> None:
        sdk = self._sdk = self._sdk or _import_franky()
        self.robot = sdk.Robot(self.config.ip)
        self.robot.recover_from_errors()
        self.gripper = sdk.Gripper(self.config.ip)
        if self.config.go_home_on_connect:
            self.go_home()
        self._start_tracker()
        self._set_gripper(True)

    def disconnect(self) -> None:
        if self.tracker is not None:
            self._guard(self.tracker.stop)
        self.robot = self.gripper = self.tracker = None

    def _start_tracker(self) -> None:
        c, sdk = self.config, self._sdk
        self.tracker = sdk.CartesianImpedanceTracker(
            self.robot, translational_stiffness=c.translational_stiffness,
            rotational_stiffness=c.rotational_stiffness, max_delta_tau=c.max_delta_tau)
        self._reference = self._measured_pose()
        self.tracker.start(self._affine(self._reference))

    def _affine(self, t: np.ndarray):
        return self._sdk.Affine(t[:3, 3].tolist(), poses.matrix_to_quat_xyzw(t[:3, :3]).tolist())

    def _measured_pose(self) -> np.ndarray:
        ee = self.robot.current_cartesian_state.pose.end_effector_pose
        t = np.eye(4)
        t[:3, :3] = poses.quat_xyzw_to_matrix(np.asarray(ee.quaternion, dtype=np.float64))
        t[:3, 3] = np.asarray(ee.translation, dtype=np.float64)
        return t

    def get_state(self) -> ArmState:
        q = np.asarray(self.robot.current_joint_state.position, dtype=np.float64)
        width = float(self.gripper.width)
        return ArmState(JOINTS, q, poses.matrix_to_pose7(self._measured_pose()),
                        float(np.clip(width / self.config.gripper_max_width_m, 0.0, 1.0)), time.time_ns())

    def send_action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        sent = np.zeros(EE_DELTA_DIM)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        if self.fault is not None or not self._healthy():
            return sent.astype(np.float32)
        c = self.config
        d = a[:6].copy()
        n = np.linalg.norm(d[:3])
        if n > c.max_step_m:
            d[:3] *= c.max_step_m / n
        d[3:] = np.clip(d[3:], -c.max_step_rad, c.max_step_rad)
        measured = self._measured_pose()
        target = poses.apply_ee_delta(self._reference, d)
        offset = target[:3, 3] - measured[:3, 3]
        on = np.linalg.norm(offset)
        if on > c.max_reference_offset_m:  # do not wind up the spring against an obstacle
            target[:3, 3] = measured[:3, 3] + offset * (c.max_reference_offset_m / on)
        if self._guard(self.tracker.set_target, self._affine(target)):
            sent[:6] = poses.pose_delta(self._reference, target)
            self._reference = target
        self._set_gripper(a[GRIPPER_INDEX] >= 0.5)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        return sent.astype(np.float32)

    def hold(self) -> None:
        # The tracker keeps pulling toward the last reference: holding needs no new target.
        self._healthy()

    def _healthy(self) -> bool:
        if self.fault is None and getattr(self.robot, "has_errors", False):
            self._set_fault("the robot reports an error (reflex or safety stop)")
        return self.fault is None

    def _guard(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except self._sdk.ControlException as e:  # reflexes (collision, joint limits) surface here
            self._set_fault(f"control exception: {e}")
            return False

    def _set_fault(self, reason: str) -> None:
        self.fault = reason
        log.error("Franka stopped: %s. Clear the cause, release the e-stop and call arm/recover.", reason)

    def _set_gripper(self, open_: bool) -> None:
        # Franka Hand moves are slow (~1 s): asynchronous, and only on a change of the binary target.
        if open_ == self._gripper_open and self._gripper_sent:
            return
        c = self.config
        if open_:
            self.gripper.move_async(c.gripper_max_width_m, c.gripper_speed_mps)
        else:
            self.gripper.grasp_async(0.0, c.gripper_speed_mps, c.gripper_force_n, epsilon_inner=0.005,
                                     epsilon_outer=c.gripper_max_width_m)
        self._gripper_open, self._gripper_sent = open_, True

    def go_home(self) -> None:
        """Joint-space move to the home pose (blocking, slow). Stops the impedance tracker while it runs."""
        if self.tracker is not None:
            self._guard(self.tracker.stop)
        self.robot.relative_dynamics_factor = self.config.homing_dynamics_factor
        self.robot.move(self._sdk.JointMotion(list(self.config.home_joints_rad)))

    def recover(self) -> str:
        """After a reflex: franky's recover_from_errors, home, restart the tracker at the measured pose."""
        self.robot.recover_from_errors()
        self.fault = None
        try:
            self.go_home()
        except self._sdk.ControlException as e:
            self._set_fault(f"homing failed: {e}")
            return f"recovery failed while homing: {e}; check the robot's Desk for the error"
        self._start_tracker()
        return "recovered: at home pose, impedance tracker restarted"
