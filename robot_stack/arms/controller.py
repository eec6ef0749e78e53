"""ArmController: the arm node's logic in plain Python (tested without ROS).

    action msg ──submit()──► pending command ──tick() at control_hz──► clamp ──► Arm.send_action ──► executed
                               │ rejected: names/shape/NaN/stale      │ no fresh command / e-stop /     (the driver
                               ▼                                      │ disabled / started outside box   checks its
                          CommandRejected                             ▼                                  joint command)
                                                                  Arm.hold()  (status: holding / estopped / disabled)

Each command is executed at most once: a policy that stops sending makes the arm hold after one tick,
not replay its last motion. The e-stop latches until explicitly released. A driver exception inside a tick
never escapes: the controller latches the e-stop with status "fault" and holds (every crash path ends in a
hold, not in a dead node whose shutdown path moves the arm).

Start-up: real rigs start disabled (`start_enabled=False`) until an operator calls arm/enable; an arm whose
measured pose is outside the workspace box or the orientation limits is not moved until an operator
acknowledges (arm/enable), and then only comes back at the clamped rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from robot_stack.arms.arm import Arm
from robot_stack.arms.safety import (
    CommandRejected,
    SafetyConfig,
    clamp_ee_delta,
    pose_violation,
    quat_xyzw_to_mat,
    rotation_angle,
    validate_command,
)

log = logging.getLogger(__name__)

OK, HOLDING, ESTOPPED, FAULT, DISABLED = "ok", "holding", "estopped", "fault", "disabled"


@dataclass(frozen=True)
class Command:
    action: np.ndarray
    stamp_ns: int  # stamp of the observation this command answers
    source: str  # e.g. "sim:scripted_expert", "policy:bc_conv@v2", "teleop:spacemouse"


@dataclass(frozen=True)
class Executed:
    action: np.ndarray  # what was actually sent after clamping, physical units (7,)
    stamp_ns: int
    source: str


class ArmController:
    def __init__(self, arm: Arm, safety: SafetyConfig, start_enabled: bool = True):
        if arm.action_space != "ee_delta":
            raise ValueError(f"ArmController supports the ee_delta space; {arm.name} uses {arm.action_space}")
        self.arm = arm
        self.safety = safety
        arm.set_safety(safety)
        self._pending: Command | None = None
        self.status = HOLDING
        self.reason = "waiting for the first command"
        self.estopped = False
        self.enabled = bool(start_enabled)
        self.fault = ""  # a driver exception caught in a tick (latched with the e-stop)
        self._move_until_ns = 0  # a driver-run move (homing) in progress: no commands until it ends
        self._move_label = ""
        self._start_checked = False  # whether the start pose was checked against the box / orientation limits
        self._outside_ack = False
        if not self.enabled:
            self.status, self.reason = DISABLED, "arm disabled at start: call arm/enable when the workspace is clear"
        self.n_rejected = 0
        self.n_executed = 0
        self.last_rejection = ""
        # The motion actually commanded, judged against the measured pose at send time (drivers that can say
        # what they commanded implement Arm.commanded_pose): published on arm/status, so anyone on the graph
        # can check the limits held (tests/hil/test_safety_topics.py).
        self.cmd_max_step_m = 0.0
        self.cmd_max_step_rad = 0.0
        self.cmd_max_box_excess_m = 0.0
        self.cmd_over_limit = 0  # kept until the next rejection, so a status reader cannot miss it

    def submit(self, names, values, stamp_ns: int, now_ns: int, source: str) -> None:
        """Queue a command for the next tick, or raise CommandRejected (malformed or stale)."""
        try:
            action = validate_command(names, values, self.arm.action_space)
            age_ms = (now_ns - stamp_ns) / 1e6
            if age_ms < -self.safety.max_command_age_ms:
                raise CommandRejected(
                    f"command from {source} answers an observation {-age_ms:.0f} ms in the future: the sender's "
                    "clock is off or it invents stamps; echo the observation's stamp")
            if age_ms > self.safety.max_command_age_ms:
                raise CommandRejected(
                    f"stale command from {source}: it answers an observation {age_ms:.0f} ms old "
                    f"(max_command_age_ms={self.safety.max_command_age_ms:.0f}); check the sender's latency and clocks"
                )
        except CommandRejected as e:
            self.n_rejected += 1
            self.last_rejection = str(e)
            raise
        self._pending = Command(action, stamp_ns, source)

    def tick(self, now_ns: int) -> Executed | None:
        """One control step: execute the pending command or hold. Never raises (a driver fault → e-stop)."""
        try:
            return self._tick(now_ns)
        except Exception as e:  # noqa: BLE001 - any driver failure must end in a hold, not a dead node
            self.fault = f"{type(e).__name__}: {e}"
            log.exception("arm driver failed inside the control tick; e-stop engaged")
            self.estopped = True
            self._pending = None
            self.status, self.reason = FAULT, f"driver error: {self.fault}; fix the cause, then release the e-stop"
            try:
                self.arm.hold()
            except Exception:  # noqa: BLE001
                log.exception("hold after the driver error failed too")
            return None

    def _tick(self, now_ns: int) -> Executed | None:
        cmd, self._pending = self._pending, None
        if self.estopped or not self.enabled:
            self.arm.hold()
            return None
        if now_ns < self._move_until_ns:
            self._set(HOLDING, f"{self._move_label} in progress; commands are dropped until it ends")
            return None
        if self._move_label:
            self._move_label = ""
            self._start_checked = False  # the move may have ended anywhere: check the pose again
        if not self._start_checked:
            self._check_start_pose()
        if not self._outside_ack:
            self.arm.hold()
            return None
        if cmd is None:
            self._set(HOLDING, "no command this tick")
            self.arm.hold()
            return None
        if (now_ns - cmd.stamp_ns) / 1e6 > self.safety.max_command_age_ms:
            self._set(HOLDING, f"command from {cmd.source} went stale before execution")
            self.arm.hold()
            return None
        state = self.arm.get_state()
        pose = np.asarray(state.ee_pose, dtype=np.float64)
        safe = clamp_ee_delta(cmd.action, pose[:3], self.safety, pose[3:7])
        sent = self.arm.send_action(safe)
        self._judge_commanded(pose)
        self.n_executed += 1
        self._set(OK, f"executing {cmd.source}")
        return Executed(np.asarray(sent, dtype=np.float32), cmd.stamp_ns, cmd.source)

    def _judge_commanded(self, measured_pose7: np.ndarray) -> None:
        commanded = self.arm.commanded_pose()
        if commanded is None:
            return
        pos, mat = commanded
        meas_mat = quat_xyzw_to_mat(measured_pose7[3:7])
        step_m = float(np.linalg.norm(np.asarray(pos) - measured_pose7[:3]))
        step_rad = rotation_angle(np.asarray(mat) @ meas_mat.T)
        out_m = self.safety.box_excess_m(pos)
        self.cmd_max_step_m = max(self.cmd_max_step_m, step_m)
        self.cmd_max_step_rad = max(self.cmd_max_step_rad, step_rad)
        self.cmd_max_box_excess_m = max(self.cmd_max_box_excess_m, out_m)
        why = pose_violation(measured_pose7[:3], meas_mat, pos, mat, self.safety)
        if why:
            self.cmd_over_limit += 1
            log.error("commanded motion over a limit (%s): a driver bug, report it", why)

    def _check_start_pose(self) -> None:
        """The first time the arm may move: is it inside the box and the orientation limits?"""
        self._start_checked = True
        pose = np.asarray(self.arm.get_state().ee_pose, dtype=np.float64)
        out_m = self.safety.box_excess_m(pose[:3])
        out_rad = self.safety.orientation_excess_rad(quat_xyzw_to_mat(pose[3:7]))
        if out_m <= 1e-3 and out_rad <= 1e-2:
            self._outside_ack = True
            return
        self._set(HOLDING, f"the arm starts outside its limits ({out_m * 1000:.0f} mm outside the workspace box, "
                           f"{out_rad:.2f} rad outside the orientation limits): move it in by hand, or call "
                           "arm/enable to bring it back at the clamped rate")
        log.warning("arm starts outside the workspace limits (%.3f m, %.3f rad); waiting for arm/enable",
                    out_m, out_rad)

    def begin_move(self, label: str, duration_s: float, now_ns: int) -> None:
        """A driver-run move (homing) has been started without blocking: commands are dropped until it ends,
        and an e-stop during it halts the arm where it is (a blocking move could not be interrupted)."""
        self._pending = None
        self._move_label = label
        self._move_until_ns = now_ns + int(duration_s * 1e9)
        self._set(HOLDING, f"{label} in progress")
        log.warning("%s started (%.1f s); the e-stop interrupts it", label, duration_s)

    @property
    def moving(self) -> bool:
        return bool(self._move_label)

    def set_enabled(self, enabled: bool, caller: str = "") -> None:
        """arm/enable: enable (also acknowledges a start outside the box) or disable (hold) the arm."""
        self.enabled = bool(enabled)
        self._pending = None
        log.warning("arm %s by %s", "enabled" if enabled else "disabled", caller or "an unnamed caller")
        if enabled:
            self._start_checked = True
            self._outside_ack = True
            self._set(HOLDING, f"arm enabled by {caller or 'operator'}; waiting for commands")
        else:
            self._set(DISABLED, f"arm disabled by {caller or 'operator'}")

    def set_estop(self, engaged: bool, reason: str, caller: str = "") -> None:
        """Engage (latches, drops any pending command) or explicitly release the e-stop."""
        was = self.estopped
        self.estopped = engaged
        self._pending = None
        if engaged:
            if self._move_label:
                reason = f"{reason or 'e-stop'} (interrupted {self._move_label})"
            self._move_until_ns, self._move_label = 0, ""
            if not was:
                try:
                    self.arm.halt()  # stop what is in flight now, not at the end of its trajectory
                except Exception:  # noqa: BLE001 - the latch must hold even if the driver cannot halt
                    log.exception("halt on e-stop failed")
            self._set(ESTOPPED, reason or "e-stop engaged")
            log.warning("e-stop engaged by %s: %s", caller or "unnamed", reason)
        else:
            self.fault = ""
            self._set(HOLDING, "e-stop released; waiting for commands")
            log.warning("e-stop released by %s (%s)", caller or "unnamed", reason)

    def _set(self, status: str, reason: str) -> None:
        if status == ESTOPPED or not (self.estopped or (not self.enabled and status != DISABLED)):
            self.status, self.reason = status, reason


__all__ = ["ArmController", "Command", "CommandRejected", "Executed", "OK", "HOLDING", "ESTOPPED", "FAULT",
           "DISABLED"]
