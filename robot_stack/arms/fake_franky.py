"""A stand-in for the franky module (the subset `Franka` uses), following franky's documented API:
`Robot(ip)` with `recover_from_errors()`, `relative_dynamics_factor`, `move(JointMotion)`,
`current_joint_state.position`, `current_cartesian_state.pose.end_effector_pose` (an `Affine` with
`translation` and `quaternion` xyzw), `has_errors`; `Gripper(ip)` with `width`, `move_async`, `grasp_async`;
`CartesianImpedanceTracker(robot, translational_stiffness, rotational_stiffness, max_delta_tau)` with
`start(target)`, `set_target(target)`, `stop()`; and `ControlException`.

The "robot" is kinematic: the end effector reaches each impedance target at once (joints are not
modelled beyond the home move). `trigger_reflex()` makes the next call raise like a collision reflex.
Registered as arm driver `fake_franky`.
"""

from __future__ import annotations

import types
from collections import Counter

import numpy as np

from robot_stack.arms import poses
from robot_stack.arms.arm import ARMS
from robot_stack.arms.franka import Franka, FrankaConfig


class ControlException(RuntimeError):
    pass


class Affine:
    def __init__(self, translation=(0.0, 0.0, 0.0), quaternion=(0.0, 0.0, 0.0, 1.0)):
        self.translation = np.asarray(translation, dtype=np.float64)
        self.quaternion = np.asarray(quaternion, dtype=np.float64)


class JointMotion:
    def __init__(self, target):
        self.target = list(target)


class Robot:
    def __init__(self, hostname: str):
        self.hostname = hostname
        self.calls: Counter = Counter()
        self.has_errors = False
        self.relative_dynamics_factor = 1.0
        self._q = np.zeros(7)
        # A Franka-like EE pose at the ready configuration, gripper pointing down.
        self._ee = Affine((0.307, 0.0, 0.487), (1.0, 0.0, 0.0, 0.0))
        self._pending_reflex = False

    def trigger_reflex(self) -> None:
        self._pending_reflex = True

    def _check(self) -> None:
        if self._pending_reflex:
            self._pending_reflex, self.has_errors = False, True
            raise ControlException("cartesian_reflex: collision detected")
        if self.has_errors:
            raise ControlException("robot is in error state; call recover_from_errors()")

    def recover_from_errors(self) -> None:
        self.calls["recover_from_errors"] += 1
        self.has_errors = False

    def move(self, motion, asynchronous: bool = False) -> None:
        self.calls["move"] += 1
        self._check()
        self._q = np.asarray(motion.target, dtype=np.float64)

    @property
    def current_joint_state(self):
        return types.SimpleNamespace(position=self._q.copy(), velocity=np.zeros(7))

    @property
    def current_cartesian_state(self):
        return types.SimpleNamespace(pose=types.SimpleNamespace(end_effector_pose=self._ee))


class Gripper:
    def __init__(self, hostname: str):
        self.width = 0.08
        self.calls: Counter = Counter()

    def move_async(self, width: float, speed: float):
        self.calls["move_async"] += 1
        self.width = float(width)

    def grasp_async(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
                    epsilon_outer: float = 0.005):
        self.calls["grasp_async"] += 1
        self.width = float(width)


class CartesianImpedanceTracker:
    def __init__(self, robot: Robot, translational_stiffness: float = 1200.0, rotational_stiffness: float = 80.0,
                 max_delta_tau: float = 0.5, period: float = 0.01):
        self.robot, self.targets, self.active = robot, [], False
        self.gains = (translational_stiffness, rotational_stiffness, max_delta_tau)

    def start(self, target: Affine) -> None:
        self.robot._check()
        self.active = True
        self.set_target(target)

    def set_target(self, target: Affine, twist=None) -> None:
        self.robot._check()
        if not self.active:
            raise ControlException("tracker not started")
        self.targets.append(target)
        self.robot._ee = Affine(target.translation.copy(), target.quaternion.copy())

    def stop(self) -> None:
        self.active = False


def module() -> types.SimpleNamespace:
    """A franky-shaped namespace the driver uses in place of `import franky`."""
    return types.SimpleNamespace(Robot=Robot, Gripper=Gripper, Affine=Affine, JointMotion=JointMotion,
                                 CartesianImpedanceTracker=CartesianImpedanceTracker, ControlException=ControlException)


@ARMS.register("fake_franky")
class FakeFrankyFranka(Franka):
    name = "fake_franky"

    def __init__(self, config: FrankaConfig, node=None):
        super().__init__(config, node, sdk=module())


__all__ = ["FakeFrankyFranka", "module", "poses"]
