"""The `Teleop` hardware role: a device a person drives the arm with (keyboard, SpaceMouse, gamepad, file replay).

`read()` is called once per control step and returns an `ee_delta` action in physical units plus the
operator events pressed since the last call (episode control keys). Devices never block: a device with
nothing new returns zero motion and keeps the gripper where the person left it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from robot_stack.registry import Registry
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

# Operator events (episode control). "intervene" toggles between policy and person (intervention mode);
# "home" marks the current joints as the home pose (`robot-stack calibrate home`).
EVENTS = ("start", "success", "fail", "discard", "intervene", "quit", "home")


@dataclass
class TeleopSample:
    action: np.ndarray  # (7,) ee_delta: metres / radians per step, gripper absolute [0, 1]
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TeleopScale:
    """Full deflection of the device = this much motion per control step (5 Hz: 2 cm = 0.1 m/s)."""

    max_step_m: float = 0.02
    max_step_rad: float = 0.1


class Teleop(abc.ABC):
    name: str = ""

    def __init__(self, scale: TeleopScale | None = None):
        self.scale = scale or TeleopScale()
        self.gripper = 1.0  # open

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the device."""

    def disconnect(self) -> None:  # noqa: B027
        """Release the device."""

    @abc.abstractmethod
    def read(self) -> TeleopSample:
        """Motion for this control step + events since the last read. Never blocks."""

    def _action(self, unit6) -> np.ndarray:
        """Device axes in [-1, 1] (x, y, z, roll, pitch, yaw) -> ee_delta with the current gripper."""
        u = np.clip(np.asarray(unit6, dtype=np.float64), -1.0, 1.0)
        a = np.zeros(EE_DELTA_DIM)
        a[:3] = u[:3] * self.scale.max_step_m
        a[3:6] = u[3:6] * self.scale.max_step_rad
        a[GRIPPER_INDEX] = self.gripper
        return a


TELEOPS: Registry[type[Teleop]] = Registry("teleop device")
