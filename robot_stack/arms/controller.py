"""ArmController: the arm node's logic in plain Python (tested without ROS).

    action msg ──submit()──► pending command ──tick() at control_hz──► clamp ──► Arm.send_action ──► executed
                               │ rejected: names/shape/NaN/stale      │ no fresh command / e-stop
                               ▼                                      ▼
                          CommandRejected                         Arm.hold()  (status: holding / estopped)

Each command is executed at most once: a policy that stops sending makes the arm hold after one tick,
not replay its last motion. The e-stop latches until explicitly released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from robot_stack.arms.arm import Arm
from robot_stack.arms.safety import CommandRejected, SafetyConfig, clamp_ee_delta, validate_command

log = logging.getLogger(__name__)

OK, HOLDING, ESTOPPED, FAULT = "ok", "holding", "estopped", "fault"


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
    def __init__(self, arm: Arm, safety: SafetyConfig):
        if arm.action_space != "ee_delta":
            raise ValueError(f"ArmController supports the ee_delta space; {arm.name} uses {arm.action_space}")
        self.arm = arm
        self.safety = safety
        self._pending: Command | None = None
        self.status = HOLDING
        self.reason = "waiting for the first command"
        self.estopped = False
        self.n_rejected = 0
        self.n_executed = 0
        self.last_rejection = ""  # kept until the next rejection, so a status reader cannot miss it

    def submit(self, names, values, stamp_ns: int, now_ns: int, source: str) -> None:
        """Queue a command for the next tick, or raise CommandRejected (malformed or stale)."""
        try:
            action = validate_command(names, values, self.arm.action_space)
            age_ms = (now_ns - stamp_ns) / 1e6
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
        """One control step: execute the pending command or hold."""
        cmd, self._pending = self._pending, None
        if self.estopped:
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
        safe = clamp_ee_delta(cmd.action, np.asarray(state.ee_pose[:3]), self.safety)
        sent = self.arm.send_action(safe)
        self.n_executed += 1
        self._set(OK, f"executing {cmd.source}")
        return Executed(np.asarray(sent, dtype=np.float32), cmd.stamp_ns, cmd.source)

    def set_estop(self, engaged: bool, reason: str) -> None:
        """Engage (latches, drops any pending command) or explicitly release the e-stop."""
        self.estopped = engaged
        self._pending = None
        if engaged:
            self._set(ESTOPPED, reason or "e-stop engaged")
            log.warning("e-stop engaged: %s", reason)
        else:
            self._set(HOLDING, "e-stop released; waiting for commands")
            log.info("e-stop released")

    def _set(self, status: str, reason: str) -> None:
        if not self.estopped or status == ESTOPPED:
            self.status, self.reason = status, reason


__all__ = ["ArmController", "Command", "CommandRejected", "Executed", "OK", "HOLDING", "ESTOPPED", "FAULT"]
