"""Franka (FR3, and Panda with a matching libfranka) through franky-control 2.0 (import name `franky`).

    send_action(ee_delta) ──► target = last reference ∘ delta ──► safety.limit_pose_step(MEASURED pose, target)
                          ──► CartesianImpedanceTracker.set_target (franky's 1 kHz impedance loop in C++)
    every tick: robot.has_errors / not robot.is_in_control ──► fault (the rig node e-stops), no new reference
    hold / e-stop: reference := measured pose (no preloaded spring)      recover(): recover_from_errors + home

franky 2.0 facts this driver is written against (checked against the installed wheel and franky-sim 1.0.4):
- `CartesianImpedanceTracker(robot, ...)` starts the asynchronous motion in its constructor (there is no
  `start()`), seeded at the current pose; `tracker.stop()` ramps it down and joins it.
- `set_target` only writes a reference: it never raises on a reflex. A reflex ends the motion, so
  `robot.is_in_control` goes False and `robot.has_errors` True; both are read every tick (fail closed).
- A blocking `robot.move(JointMotion)` (homing) preempts nothing once the tracker is stopped; the tracker is
  restarted after homing so the arm takes commands again.

Versions: franky-control wheels bundle an FR3 libfranka (>= 0.10, robot server 5+). An older Panda (system
4.x) needs franky built from source against libfranka 0.9.x.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_stack.arms import poses
from robot_stack.arms.arm import ARMS, Arm, ArmState
from robot_stack.arms.safety import SafetyConfig, limit_pose_step
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

log = logging.getLogger(__name__)
JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))


@dataclass(frozen=True)
class FrankaConfig:
    """`ip` and the home pose are site values (calibration/<rig>/arm.yaml); `safety` is the rig's safety box.

    The driver limits its impedance reference itself (not only the ArmController's command) because the
    reference is what the 1 kHz torque loop pulls toward: it must stay inside the box and within one step
    of where the arm measurably is.
    """

    ip: str
    home_joints_rad: tuple[float, ...]
    safety: SafetyConfig
    # Cartesian impedance (N/m, Nm/rad). max_delta_tau limits the torque rate (Nm per 1 ms tick) so a target
    # jump cannot produce a torque step (a reflex trigger).
    translational_stiffness: float = 1200.0
    rotational_stiffness: float = 80.0
    max_delta_tau: float = 0.5
    # Per-step reference limits; the tighter of these and safety.max_delta_m / max_delta_rad applies.
    max_step_m: float = 0.02
    max_step_rad: float = 0.1
    # Homing with franky's Ruckig joint motion at this fraction of the robot's velocity/accel/jerk limits.
    homing_dynamics_factor: float = 0.1
    gripper_speed_mps: float = 0.1
    gripper_force_n: float = 20.0
    gripper_max_width_m: float = 0.08
    go_home_on_connect: bool = True
    # libfranka refuses to run without a realtime kernel; franky-sim on a desktop needs "ignore".
    realtime: str = "enforce"

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
        s = m.get("safety")
        if s is None:
            raise ValueError("the Franka driver needs the rig's `safety:` box in its settings (the rig node passes "
                             "it): its impedance reference is kept inside it")
        kw["safety"] = s if isinstance(s, SafetyConfig) else SafetyConfig.from_mapping(dict(s))
        if kw.get("realtime", "enforce") not in ("enforce", "ignore"):
            raise ValueError(f"realtime must be 'enforce' (real arm) or 'ignore' (franky-sim), got {kw['realtime']!r}")
        for k in ("max_step_m", "max_step_rad", "translational_stiffness", "rotational_stiffness", "max_delta_tau"):
            if k in kw and not float(kw[k]) > 0:
                raise ValueError(f"{k} must be positive, got {kw[k]!r}")
        return cls(**kw)

    def step_limits(self) -> SafetyConfig:
        """The safety config with the driver's (possibly tighter) per-step limits."""
        s = self.safety
        return dataclasses.replace(s, max_delta_m=min(s.max_delta_m, self.max_step_m),
                                   max_delta_rad=min(s.max_delta_rad, self.max_step_rad))


def _import_franky():
    try:
        import franky
    except ImportError as e:
        raise ImportError("the Franka driver needs franky-control (`pip install robot_stack[franka]`); "
                          "without hardware run it against franky-sim (rig sim_franky)") from e
    return franky


@ARMS.register("franka")
class Franka(Arm):
    name = "franka"
    action_space = "ee_delta"

    def __init__(self, config: FrankaConfig, node=None, sdk=None):
        self.config = config
        self._limits = config.step_limits()
        self._sdk = sdk  # the franky module; imported lazily in connect()
        self.robot = self.gripper = self.tracker = None
        self.fault: str | None = None
        self._reference: np.ndarray | None = None  # (4, 4) the impedance target last written
        self._gripper_open = True
        self._gripper_sent = False
        # Gripper moves run on a worker thread of our own, latest target wins: franky's *_async calls block
        # the caller while a previous hand move is still running (measured against franky-sim: the control
        # tick stalled for seconds), while its blocking calls release the GIL.
        self._gripper_want: bool | None = None
        self._gripper_cv = threading.Condition()
        self._gripper_thread: threading.Thread | None = None

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINTS

    @property
    def reference(self) -> np.ndarray | None:
        """The impedance target (4, 4) the torque loop currently pulls toward (a copy)."""
        return None if self._reference is None else self._reference.copy()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def connect(self) -> None:
        sdk = self._sdk = self._sdk or _import_franky()
        rt = sdk.RealtimeConfig.Ignore if self.config.realtime == "ignore" else sdk.RealtimeConfig.Enforce
        self.robot = sdk.Robot(self.config.ip, realtime_config=rt)
        self.robot.recover_from_errors()
        self.gripper = sdk.Gripper(self.config.ip)
        if self.config.go_home_on_connect:
            self.go_home()
        else:
            self._start_tracker()
        self._set_gripper(True)

    def disconnect(self) -> None:
        self._stop_tracker()
        self.robot = self.gripper = self.tracker = None

    def _start_tracker(self) -> None:
        c = self.config
        # The constructor starts the asynchronous motion, seeded at the current pose.
        self.tracker = self._sdk.CartesianImpedanceTracker(
            self.robot, translational_stiffness=c.translational_stiffness,
            rotational_stiffness=c.rotational_stiffness, max_delta_tau=c.max_delta_tau)
        self._reference = self._measured_pose()
        self._write_reference(self._reference)

    def _stop_tracker(self) -> None:
        if self.tracker is None:
            return
        try:
            self.tracker.stop()
        except self._sdk.ControlException as e:  # the motion had already ended in a reflex
            self._set_fault(f"control exception: {e}")
        self.tracker = None

    # -- state ---------------------------------------------------------------------------------------------
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

    def _healthy(self) -> bool:
        """Fail closed: a fault unless the robot reports no error AND our impedance motion is running."""
        if self.fault is not None:
            return False
        if self.robot.has_errors:
            self._set_fault(f"the robot reports an error (reflex or safety stop): {self.robot.current_errors}")
        elif self.tracker is None or not self.robot.is_in_control:
            self._set_fault("the impedance controller is not running (motion ended: reflex, e-stop or "
                            "lost connection)" + self._motion_error())
        return self.fault is None

    def _motion_error(self) -> str:
        try:
            self.robot.join_motion(timeout=0.0)
        except self._sdk.ControlException as e:
            return f": {e}"
        except Exception:  # noqa: BLE001 - only for the message; the fault is raised either way
            pass
        return ""

    # -- commands ------------------------------------------------------------------------------------------
    def _write_reference(self, target: np.ndarray) -> np.ndarray:
        """THE one place the impedance reference is set: limited against the measured pose first."""
        measured = self._measured_pose()
        pos, mat = limit_pose_step(measured[:3, 3], measured[:3, :3], target[:3, 3], target[:3, :3], self._limits)
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = mat, pos
        quat = poses.matrix_to_quat_xyzw(mat)
        self.tracker.set_target(self._sdk.Affine(pos.tolist(), quat.tolist()))
        return t

    def send_action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        sent = np.zeros(EE_DELTA_DIM)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        if a.shape != (EE_DELTA_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"ee_delta action must be {EE_DELTA_DIM} finite values, got {a.tolist()}")
        if not self._healthy():
            return sent.astype(np.float32)
        # From the last reference, so the arm's tracking lag does not eat the commanded motion; the limit
        # against the measured pose then bounds what the spring can pull.
        target = self._write_reference(poses.apply_ee_delta(self._reference, a[:6]))
        sent[:6] = poses.pose_delta(self._reference, target)
        self._reference = target
        self._set_gripper(a[GRIPPER_INDEX] >= 0.5)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        return sent.astype(np.float32)

    def hold(self) -> None:
        # Re-anchor at the measured pose: a held reference away from the arm would be a loaded spring.
        if self._healthy():
            self._reference = self._write_reference(self._measured_pose())

    def _set_fault(self, reason: str) -> None:
        self.fault = reason
        log.error("Franka stopped: %s. Clear the cause, release the e-stop and call arm/recover.", reason)

    def _set_gripper(self, open_: bool) -> None:
        # Franka Hand moves are slow (~1 s): asynchronous, and only on a change of the binary target.
        if open_ == self._gripper_open and self._gripper_sent:
            return
        with self._gripper_cv:
            self._gripper_want = open_
            self._gripper_cv.notify()
        if self._gripper_thread is None or not self._gripper_thread.is_alive():
            self._gripper_thread = threading.Thread(target=self._gripper_worker, args=(self.gripper,),
                                                    name="franka-gripper", daemon=True)
            self._gripper_thread.start()
        self._gripper_open, self._gripper_sent = open_, True

    def _gripper_worker(self, gripper) -> None:
        c = self.config
        while True:
            with self._gripper_cv:
                while self._gripper_want is None:
                    if not self._gripper_cv.wait(timeout=5.0) and self.gripper is not gripper:
                        return  # disconnected
                want, self._gripper_want = self._gripper_want, None
            try:
                if want:
                    gripper.move(c.gripper_max_width_m, c.gripper_speed_mps)
                else:
                    gripper.grasp(0.0, c.gripper_speed_mps, c.gripper_force_n, epsilon_inner=0.005,
                                  epsilon_outer=c.gripper_max_width_m)
            except Exception as e:  # noqa: BLE001 - a failed grasp (nothing in the hand) is not an arm fault
                log.warning("Franka hand %s failed: %s", "open" if want else "grasp", e)

    def go_home(self) -> None:
        """Joint-space move to the home pose (blocking, slow), then the impedance tracker again at the
        measured pose, so commands after arm/home move the arm."""
        self._stop_tracker()
        self.robot.relative_dynamics_factor = self.config.homing_dynamics_factor
        try:
            self.robot.move(self._sdk.JointMotion(list(self.config.home_joints_rad)))
        except self._sdk.ControlException as e:
            self._set_fault(f"homing failed: {e}")
            return
        self._start_tracker()

    def recover(self) -> str:
        """After a reflex: franky's recover_from_errors, home, restart the tracker at the measured pose."""
        self._stop_tracker()
        self.fault = None
        self.robot.recover_from_errors()
        self.go_home()
        if self.fault is not None:
            return f"recovery failed: {self.fault}; check the robot's Desk for the error"
        return "recovered: at home pose, impedance tracker restarted"
