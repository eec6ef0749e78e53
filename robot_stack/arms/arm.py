"""The `Arm` hardware role: one small ABC that every driver (sim, WidowX, Franka) implements.

The safety layer (workspace box, delta clamp, watchdog, e-stop) is NOT in the drivers: it lives in
`robot_stack.arms.controller.ArmController`, which wraps any `Arm`, so every robot gets the same checks.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from robot_stack.registry import Registry
from robot_stack.types import ACTION_SPACES


@dataclass(frozen=True)
class ArmState:
    """One proprioceptive reading.

    joint_positions_rad: (n_joints,); ee_pose: (7,) xyz metres + quaternion xyzw in the base frame;
    gripper_opening: [0, 1], 1 = open; stamp_ns: capture time (wall clock, ns).
    """

    joint_names: tuple[str, ...]
    joint_positions_rad: np.ndarray
    ee_pose: np.ndarray
    gripper_opening: float
    stamp_ns: int

    def state_vector(self) -> np.ndarray:
        """`observation.state` (n_joints + 8,) float32: joints, ee xyz, ee quat xyzw, gripper."""
        return np.concatenate(
            [self.joint_positions_rad, self.ee_pose, [self.gripper_opening]]
        ).astype(np.float32)


class Arm(abc.ABC):
    """A robot arm that takes actions in one action space and reports its state."""

    name: str = ""
    action_space: str = "ee_delta"

    @property
    @abc.abstractmethod
    def joint_names(self) -> tuple[str, ...]: ...

    @property
    def action_names(self) -> tuple[str, ...]:
        return ACTION_SPACES[self.action_space]

    @abc.abstractmethod
    def get_state(self) -> ArmState: ...

    @abc.abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Execute one control step of `action` (physical units); return the action actually sent."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Keep the current pose for one control step (watchdog, e-stop): no new motion."""

    def connect(self) -> None:  # noqa: B027 - optional hook, most drivers connect in __init__
        """Open the hardware connection (default: nothing to do)."""

    def disconnect(self) -> None:  # noqa: B027
        """Leave the arm safe (holding / torque as the driver defines) and release the hardware."""


ARMS: Registry[type[Arm]] = Registry("arm driver")
