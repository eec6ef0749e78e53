"""The `Arm` hardware role: one small ABC that every driver (sim, WidowX, Franka) implements.

The command-level safety layer (workspace box, delta clamp, watchdog, e-stop) lives in
`robot_stack.arms.controller.ArmController`, which wraps any `Arm`, so every robot gets the same checks; each
driver then checks the joint command its IK produced against the same limits (see `Arm`).
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
    """A robot arm that takes actions in one action space and reports its state.

    The controller hands every driver the rig's limits (`set_safety`) before the first command: each driver
    checks the motion it is about to command against them after its own IK (`safety.limit_joint_command`,
    or `safety.limit_pose_step` for an impedance reference), because a clamp on the target alone does not
    bound what IK makes the arm do.
    """

    name: str = ""
    action_space: str = "ee_delta"
    safety = None  # SafetyConfig, set by ArmController

    def set_safety(self, safety) -> None:
        self.safety = safety

    def require_safety(self):
        if self.safety is None:
            raise RuntimeError(f"{self.name or type(self).__name__} has no safety limits: drive it through "
                               "robot_stack.arms.controller.ArmController (which calls arm.set_safety)")
        return self.safety

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

    def commanded_pose(self):
        """(pos (3,), mat (3, 3)) of the motion the last send_action commanded (FK of the joint command, or the
        impedance reference), or None if the driver cannot say. The controller judges it against the limits."""
        return None

    def halt(self) -> None:
        """Stop the motion in flight NOW (e-stop, a fault): command the measured pose, no preload. Default:
        `hold()` (drivers whose hold already means "stay where you are measured" need nothing more)."""
        self.hold()

    def connect(self) -> None:  # noqa: B027 - optional hook, most drivers connect in __init__
        """Open the hardware connection (default: nothing to do)."""

    def disconnect(self) -> None:  # noqa: B027
        """Leave the arm safe (holding / torque as the driver defines) and release the hardware."""


ARMS: Registry[type[Arm]] = Registry("arm driver")
