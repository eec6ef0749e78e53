"""A kinematic stand-in for `interbotix_xs_modules.xs_robot.arm.InterbotixManipulatorXS` (no ROS, no servos).

Built from the SDK's Python API in interbotix_ros_toolboxes (ROS 2, `xs_robot/arm.py`, `core.py`; the parts
`WidowX` uses): `bot.arm` (group_info, robot_des, joint_commands, capture_joint_positions,
set_trajectory_time, set_ee_pose_matrix(execute=False) -> (theta, ok), set_joint_positions,
go_to_home_pose, go_to_sleep_pose), `bot.gripper` (grasp/release(delay)), `bot.core` (joint_states,
js_index_map, robot_write_commands, robot_get_motor_registers, robot_reboot_motors, robot_torque_enable).
Modelled as the SDK behaves, not as the driver would like: `joint_commands` is only updated by the SDK's own
publishes (and capture_joint_positions), the joint-limit check also rejects a solution whose speed
|θ − joint_commands| / moving_time exceeds the joint velocity limits, and set_trajectory_time writes the
registers only when a value changes. tests/arms/test_interbotix_contract.py pins every signature to the SDK's.
Like Interbotix's own `xs_sdk_sim`, commanded joint positions are reached at once. Faults can be injected
(`inject_effort`, `inject_hardware_error`) and every call is counted, so tests can check that the driver
does not write servo registers in the control loop.

Registered as arm driver `fake_interbotix` (robot_stack/arms/factory.py imports this module by name): `rig.driver=fake_interbotix`
runs the real-rig node without an arm.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from robot_stack.arms import poses
from robot_stack.arms.arm import ARMS
from robot_stack.arms.widowx import WidowX, WidowXConfig

JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# wx250s product-of-exponentials description (space frame), as in interbotix mr_descriptions.
WX250S_M = np.array([[1.0, 0, 0, 0.458325], [0, 1.0, 0, 0], [0, 0, 1.0, 0.36065], [0, 0, 0, 1.0]])
WX250S_SLIST = np.array([
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
    [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
    [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
    [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
    [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
]).T
LOWER = np.array([-3.14, -1.88, -2.15, -3.14, -1.75, -3.14])
UPPER = np.array([3.14, 1.99, 1.61, 3.14, 2.15, 3.14])
SLEEP = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
# wx250s URDF joint velocity limits (rad/s): pi for every arm joint.
VELOCITY_LIMITS = np.full(6, np.pi)


@dataclass
class _JointStates:
    name: list
    position: list
    velocity: list
    effort: list


class _Core:
    def __init__(self, parent: FakeInterbotixManipulatorXS):
        self._p = parent
        names = [*JOINTS, "left_finger", "right_finger"]
        self.js_index_map = {n: i for i, n in enumerate(names)}
        self.joint_states = _JointStates(names, [0.0] * 6 + [0.037, -0.037], [0.0] * 8, [0.0] * 8)

    def robot_write_commands(self, group_name: str, commands) -> None:
        self._p.calls["robot_write_commands"] += 1
        assert group_name == "arm" and len(commands) == 6
        if self._p.torque_on:
            self._p.set_positions(np.asarray(commands, dtype=np.float64))

    def robot_get_motor_registers(self, cmd_type: str, name: str, reg: str):
        self._p.calls["robot_get_motor_registers"] += 1
        assert reg == "Hardware_Error_Status"
        return SimpleNamespace(values=[self._p.hw_errors.get(j, 0) for j in JOINTS])

    def robot_set_motor_registers(self, cmd_type: str, name: str, reg: str, value: int) -> None:
        self._p.calls["robot_set_motor_registers"] += 1

    def robot_reboot_motors(self, cmd_type: str, name: str, enable: bool, smart_reboot: bool = False) -> None:
        self._p.calls["robot_reboot_motors"] += 1
        for j in list(self._p.hw_errors):
            if j not in self._p.persistent_errors:
                del self._p.hw_errors[j]

    def robot_torque_enable(self, cmd_type: str, name: str, enable: bool) -> None:
        self._p.calls["robot_torque_enable"] += 1
        if name == "arm":
            self._p.torque_on = bool(enable)


class _Arm:
    def __init__(self, parent: FakeInterbotixManipulatorXS):
        self._p = parent
        self.group_info = SimpleNamespace(joint_names=list(JOINTS), num_joints=6, joint_lower_limits=list(LOWER),
                                          joint_upper_limits=list(UPPER),
                                          joint_velocity_limits=list(VELOCITY_LIMITS),
                                          joint_sleep_positions=list(SLEEP))
        self.robot_des = SimpleNamespace(M=WX250S_M, Slist=WX250S_SLIST)
        self.moving_time, self.accel_time = parent.moving_time, parent.accel_time
        # As the SDK: initialised from the present joint positions, then only its own publishes update it.
        self.joint_commands = list(parent.positions())

    def capture_joint_positions(self) -> None:
        self._p.calls["capture_joint_positions"] += 1
        self.joint_commands = list(self._p.positions())

    def set_trajectory_time(self, moving_time=None, accel_time=None) -> None:
        # On hardware: a blocking register write per value that CHANGED (Profile_Velocity, Profile_Acceleration).
        self._p.calls["set_trajectory_time"] += 1
        if moving_time is not None and moving_time != self.moving_time:
            self.moving_time = moving_time
            self._p.calls["register_writes"] += 1
        if accel_time is not None and accel_time != self.accel_time:
            self.accel_time = accel_time
            self._p.calls["register_writes"] += 1

    def _check_joint_limits(self, positions) -> bool:
        theta = np.array([int(x * 1000) / 1000.0 for x in positions])
        speed = np.abs(theta - np.asarray(self.joint_commands)) / float(self.moving_time)
        return bool(np.all(theta >= LOWER) and np.all(theta <= UPPER) and np.all(speed <= VELOCITY_LIMITS))

    def _publish_commands(self, positions, moving_time=None, accel_time=None, blocking=True) -> None:
        self.set_trajectory_time(moving_time, accel_time)
        self.joint_commands = [float(x) for x in positions]
        self._p.set_positions(np.asarray(positions, dtype=np.float64))

    def set_ee_pose_matrix(self, T_sd, custom_guess=None, execute=True, moving_time=None, accel_time=None,
                           blocking=True):
        self._p.calls["set_ee_pose_matrix"] += 1
        guess = np.asarray(custom_guess if custom_guess is not None else self._p.positions(), dtype=np.float64)
        theta, ok = _ik(np.asarray(T_sd), guess)
        ok = ok and self._check_joint_limits(theta)
        if ok and execute:
            self._publish_commands(theta, moving_time, accel_time, blocking)
        return theta, ok

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None, blocking=True) -> bool:
        self._p.calls["set_joint_positions"] += 1
        if not self._check_joint_limits(joint_positions):
            return False
        self._publish_commands(joint_positions, moving_time, accel_time, blocking)
        return True

    def go_to_home_pose(self, moving_time=None, accel_time=None, blocking=True) -> None:
        self._p.calls["go_to_home_pose"] += 1
        self._publish_commands(np.zeros(6), moving_time, accel_time, blocking)

    def go_to_sleep_pose(self, moving_time=None, accel_time=None, blocking=True) -> None:
        self._p.calls["go_to_sleep_pose"] += 1
        self._publish_commands(SLEEP.copy(), moving_time, accel_time, blocking)


class _Gripper:
    def __init__(self, parent: FakeInterbotixManipulatorXS):
        self._p = parent

    def grasp(self, delay: float = 1.0) -> None:
        self._p.calls["grasp"] += 1
        self._p.set_finger(0.015)

    def release(self, delay: float = 1.0) -> None:
        self._p.calls["release"] += 1
        self._p.set_finger(0.037)


def _ik(target: np.ndarray, guess: np.ndarray, iters: int = 60) -> tuple[np.ndarray, bool]:
    """Damped least-squares IK on the PoE model (numerical Jacobian); ok within 1 mm / 0.01 rad and limits."""
    q = guess.copy()
    for _ in range(iters):
        cur = poses.fk_space(WX250S_M, WX250S_SLIST, q)
        err = np.concatenate([target[:3, 3] - cur[:3, 3], poses.so3_log(target[:3, :3] @ cur[:3, :3].T)])
        if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
            break
        jac = np.zeros((6, 6))
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = 1e-6
            nxt = poses.fk_space(WX250S_M, WX250S_SLIST, q + dq)
            jac[:3, i] = (nxt[:3, 3] - cur[:3, 3]) / 1e-6
            jac[3:, i] = poses.so3_log(nxt[:3, :3] @ cur[:3, :3].T) / 1e-6
        q = q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
    cur = poses.fk_space(WX250S_M, WX250S_SLIST, q)
    ok = (np.linalg.norm(target[:3, 3] - cur[:3, 3]) < 1e-3
          and poses.rotation_angle_rad(target[:3, :3] @ cur[:3, :3].T) < 1e-2
          and bool(np.all(q >= LOWER) and np.all(q <= UPPER)))
    return q, ok


@dataclass
class FakeInterbotixManipulatorXS:
    """Same constructor keywords as the SDK class; `node` is accepted and ignored."""

    robot_model: str = "wx250s"
    group_name: str = "arm"
    gripper_name: str = "gripper"
    moving_time: float = 2.0
    accel_time: float = 0.3
    gripper_pressure: float = 0.5
    node: object = None
    calls: Counter = field(default_factory=Counter)
    hw_errors: dict = field(default_factory=dict)
    persistent_errors: set = field(default_factory=set)
    torque_on: bool = False

    def __post_init__(self):
        if self.robot_model != "wx250s":
            raise ValueError(f"the fake only models the wx250s, not {self.robot_model}")
        self.core = _Core(self)
        self.arm, self.gripper = _Arm(self), _Gripper(self)

    def positions(self) -> np.ndarray:
        return np.asarray(self.core.joint_states.position[:6], dtype=np.float64)

    def set_positions(self, q: np.ndarray) -> None:
        q = np.clip(q, LOWER, UPPER)
        self.core.joint_states.position[:6] = [float(x) for x in q]

    def set_finger(self, m: float) -> None:
        self.core.joint_states.position[6:8] = [m, -m]

    # -- fault injection --------------------------------------------------------------------------------
    def inject_effort(self, joint: str, value: float) -> None:
        self.core.joint_states.effort[self.core.js_index_map[joint]] = float(value)

    def inject_hardware_error(self, joint: str, code: int = 1 << 5, persistent: bool = False) -> None:
        self.hw_errors[joint] = int(code)
        if persistent:
            self.persistent_errors.add(joint)


@ARMS.register("fake_interbotix")
class FakeInterbotixWidowX(WidowX):
    """The real WidowX driver over FakeInterbotixManipulatorXS."""

    name = "fake_interbotix"

    def __init__(self, config: WidowXConfig, node=None):
        super().__init__(config, node, sdk_factory=lambda cfg, n: FakeInterbotixManipulatorXS(
            robot_model=cfg.robot_model, moving_time=cfg.moving_time_s, accel_time=cfg.accel_time_s, node=n))
