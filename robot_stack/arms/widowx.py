"""WidowX 250 (6-DoF) through the Interbotix ROS 2 Python API (`interbotix_xs_modules.xs_robot.arm`).

    send_action(ee_delta) ──► effort guard ──► target = delta ∘ FK(measured q) ──► IK (SDK, execute=False)
                                   │ overload: hold + open gripper + fault        │ no solution: hold
                                   ▼                                              ▼
                               fault (the rig node e-stops)     limit_joint_command(measured q, q*): FK of the
                                                                command vs the limits, per-joint step bound
                                                                              ▼
                                                               core.robot_write_commands(arm, q_safe) (one publish)

The SDK's own velocity check (`_check_joint_limits`: |θ − arm.joint_commands| / moving_time against the
joint velocity limits) compares with `arm.joint_commands`, which only the SDK's own publishes update; we
publish through `core.robot_write_commands`, so before each IK the driver calls the SDK's public
`arm.capture_joint_positions()`, which sets `joint_commands` to the measured joints: the SDK then checks each
step against where the arm IS (review H4), not against the last homing goal.

Why not `set_ee_pose_matrix(execute=True)`: every SDK move writes the servos' Profile_Velocity /
Profile_Acceleration registers through a blocking service call before publishing (bridge_data_robot's
`set_ee_pose_matrix_fast` exists to skip exactly that). We set the trajectory time ONCE in connect() and
then only publish a JointGroupCommand per step, so a 5 Hz loop never waits on the servo bus.

The SDK object is injected (`sdk_factory`), so tests run the same driver against `fake_interbotix`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_stack.arms import poses
from robot_stack.arms.arm import ARMS, Arm, ArmState
from robot_stack.arms.safety import limit_joint_command
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

log = logging.getLogger(__name__)

# Hardware_Error_Status bits (Dynamixel X-series control table, address 70).
HW_ERROR_BITS = {0: "input voltage", 2: "overheating", 3: "motor encoder", 4: "electrical shock", 5: "overload"}


@dataclass(frozen=True)
class WidowXConfig:
    """Per-rig values (home pose, effort limits) come from calibration/<rig>/arm.yaml, not from here."""

    robot_model: str = "wx250s"
    group_name: str = "arm"
    gripper_name: str = "gripper"
    # One control step = one servo trajectory. 0.2 s = the 5 Hz BridgeData v2 collection setting; the
    # accel time must stay below half the moving time or the profile degenerates to a triangle.
    moving_time_s: float = 0.2
    accel_time_s: float = 0.1
    # Slow, blocking moves for home/sleep/recover (a person may be near the arm).
    slow_moving_time_s: float = 2.0
    gripper_pressure: float = 0.5
    home_joints_rad: tuple[float, ...] = ()  # empty: the SDK's home pose (all zeros)
    # |effort| above limit + margin stops the arm (bridge ABS_MAX_JOINT_EFFORTS; units = the servo's
    # present current in mA as xs_sdk publishes it). Empty: the guard is off (not recommended).
    max_effort: tuple[float, ...] = ()
    effort_margin: float = 10.0
    # Hardware_Error_Status is read with a blocking service call; reading it every step would stall the
    # loop, so it is polled at this period (0 = only at connect / recover).
    status_check_period_s: float = 5.0
    # left_finger joint positions (m) at fully closed / fully open; maps joint_states to [0, 1].
    finger_closed_m: float = 0.015
    finger_open_m: float = 0.037
    go_home_on_connect: bool = True
    sleep_on_disconnect: bool = True
    # Torque off drops the arm unless it rests in the sleep cradle: only after a successful sleep pose.
    torque_off_on_disconnect: bool = False
    joint_names_override: tuple[str, ...] = field(default=())

    @classmethod
    def from_mapping(cls, m) -> WidowXConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(m) - known
        if unknown:
            raise ValueError(f"unknown WidowX settings {sorted(unknown)}; known: {sorted(known)}")
        kw = {k: (tuple(float(x) for x in v) if k in ("home_joints_rad", "max_effort") else v) for k, v in m.items()}
        return cls(**kw)


class ArmFault(RuntimeError):
    """The arm stopped itself (overload, motor hardware error); `recover()` after the cause is removed."""


def _interbotix_factory(cfg: WidowXConfig, node):
    # Vendor import here only: `import robot_stack` must not need the Interbotix workspace.
    try:
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
    except ImportError as e:
        raise ImportError("the WidowX driver needs the Interbotix ROS 2 workspace (interbotix_xs_modules): "
                          "install interbotix_ros_manipulators and source its setup.bash, or use "
                          "rig.driver=fake_interbotix to run without hardware") from e
    return InterbotixManipulatorXS(robot_model=cfg.robot_model, group_name=cfg.group_name,
                                   gripper_name=cfg.gripper_name, moving_time=cfg.moving_time_s,
                                   accel_time=cfg.accel_time_s, gripper_pressure=cfg.gripper_pressure, node=node)


@ARMS.register("widowx")
class WidowX(Arm):
    name = "widowx"
    action_space = "ee_delta"

    def __init__(self, config: WidowXConfig, node=None,
                 sdk_factory: Callable[[WidowXConfig, object], object] | None = None):
        self.config = config
        self._node = node
        self._factory = sdk_factory or _interbotix_factory
        self.bot = None
        self.fault: str | None = None
        self._gripper_open = True
        self._gripper_sent = False
        self._last_status_check = -np.inf
        self.n_ik_failures = 0
        self.n_scaled = 0  # steps whose joint command limit_joint_command cut back
        self.last_check = None
        self._status_read_failures = 0
        self._restore_timing = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def connect(self) -> None:
        c = self.config
        self.bot = self._factory(c, self._node)
        core = self.bot.core
        core.robot_torque_enable("group", c.group_name, True)
        core.robot_torque_enable("single", c.gripper_name, True)
        if not c.max_effort:
            log.warning("WidowX effort guard is OFF (max_effort empty): set max_effort in calibration/<rig>/arm.yaml "
                        "(see calibration/examples/widowx/arm.yaml) so a blocked arm stops itself")
        self.check_motors(reboot=True)
        # The one register write of the session: from here on every step is a plain publish.
        self.bot.arm.set_trajectory_time(moving_time=c.moving_time_s, accel_time=c.accel_time_s)
        if c.go_home_on_connect:
            self.go_home()
        self._set_gripper(True)

    def disconnect(self, park: bool = True) -> None:
        """park=False (e-stop engaged, a crash path): freeze where the arm is; never a blind sleep move."""
        if self.bot is None:
            return
        c = self.config
        try:
            if not park or self.fault is not None:
                try:
                    self.halt()
                except Exception:  # noqa: BLE001 - after rclpy shut down the publish fails; the servos keep their goal
                    log.warning("could not publish the freeze at disconnect (ROS already shut down); the servos "
                                "keep their last goal")
            elif c.sleep_on_disconnect:
                self.bot.arm.go_to_sleep_pose(moving_time=c.slow_moving_time_s, accel_time=c.slow_moving_time_s / 4,
                                              blocking=True)
                if c.torque_off_on_disconnect:
                    self.bot.core.robot_torque_enable("group", c.group_name, False)
        finally:
            self.bot = None

    # -- state -----------------------------------------------------------------------------------------
    @property
    def joint_names(self) -> tuple[str, ...]:
        if self.config.joint_names_override:
            return tuple(self.config.joint_names_override)
        return tuple(self._require().arm.group_info.joint_names)

    def _require(self):
        if self.bot is None:
            raise RuntimeError("WidowX is not connected; call connect() first")
        return self.bot

    def _joint_values(self, field_name: str) -> np.ndarray:
        bot = self._require()
        js = bot.core.joint_states
        values = getattr(js, field_name)
        return np.array([values[bot.core.js_index_map[n]] for n in bot.arm.group_info.joint_names], dtype=np.float64)

    def _fk(self, q: np.ndarray) -> np.ndarray:
        rd = self._require().arm.robot_des
        return poses.fk_space(np.asarray(rd.M), np.asarray(rd.Slist), q)

    def _fk_pos_mat(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self._fk(q)
        return t[:3, 3], t[:3, :3]

    def get_state(self) -> ArmState:
        bot = self._require()
        q = self._joint_values("position")
        js = bot.core.joint_states
        finger = float(js.position[bot.core.js_index_map["left_finger"]])
        c = self.config
        opening = (finger - c.finger_closed_m) / (c.finger_open_m - c.finger_closed_m)
        return ArmState(joint_names=self.joint_names, joint_positions_rad=q,
                        ee_pose=poses.matrix_to_pose7(self._fk(q)),
                        gripper_opening=float(np.clip(opening, 0.0, 1.0)), stamp_ns=time.time_ns())

    # -- control ---------------------------------------------------------------------------------------
    def send_action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        sent = np.zeros(EE_DELTA_DIM)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        self._maybe_check_status()
        if self.fault is not None or not self._effort_ok():
            return sent.astype(np.float32)  # faulted: nothing moves; the rig node has e-stopped
        bot = self._require()
        if self._restore_timing:  # after a non-blocking home: the per-step trajectory time, once
            bot.arm.set_trajectory_time(moving_time=self.config.moving_time_s, accel_time=self.config.accel_time_s)
            self._restore_timing = False
        q = self._joint_values("position")
        current = self._fk(q)
        target = poses.apply_ee_delta(current, a[:6])
        # The SDK's velocity check compares with arm.joint_commands: make that the measured joints (see top).
        bot.arm.capture_joint_positions()
        # IK only: execute=False returns the joint solution without any service call or publish.
        theta, ok = bot.arm.set_ee_pose_matrix(target, custom_guess=q, execute=False)
        if ok:
            check = limit_joint_command(q, np.asarray(theta, dtype=np.float64), self._fk_pos_mat,
                                        self.require_safety())
            self.last_check = check
            if check.scale < 1.0:
                self.n_scaled += 1
                if self.n_scaled == 1 or self.n_scaled % 25 == 0:
                    log.warning("joint command scaled to %.2f of the IK solution (%s); %d so far", check.scale,
                                check.reason, self.n_scaled)
            bot.core.robot_write_commands(self.config.group_name, [float(x) for x in check.q_rad])
            sent[:6] = poses.pose_delta(current, self._fk(check.q_rad))
        else:
            self.n_ik_failures += 1
            if self.n_ik_failures == 1 or self.n_ik_failures % 25 == 0:
                log.warning("no IK solution for the commanded pose (%d so far); holding. The target is outside "
                            "the WidowX's reach or joint limits: tighten rig.safety.workspace_*", self.n_ik_failures)
        # Hysteresis (0.4 / 0.6): a policy output hovering at 0.5 must not toggle the gripper every tick and
        # drop what it holds (review A5).
        g = float(a[GRIPPER_INDEX])
        self._set_gripper(True if g >= 0.6 else False if g <= 0.4 else self._gripper_open)
        sent[GRIPPER_INDEX] = 1.0 if self._gripper_open else 0.0
        return sent.astype(np.float32)

    def hold(self) -> None:
        # Position-controlled servos keep their last goal: holding = sending nothing new.
        self._maybe_check_status()
        self._effort_ok()

    def commanded_pose(self):
        return None if self.last_check is None else self._fk_pos_mat(self.last_check.q_rad)

    def halt(self) -> None:
        """Freeze at the measured joints (e-stop): the last 0.2 s goal, or a homing move, stops now."""
        bot = self._require()
        bot.core.robot_write_commands(self.config.group_name, [float(x) for x in self._joint_values("position")])

    def _set_gripper(self, open_: bool) -> None:
        # The WidowX gripper is a PWM (effort) gripper: commands are binary open/close, sent only on a change
        # (re-sending every step re-arms the SDK's gripper timer and makes it buzz). delay=0: never sleep.
        if open_ == self._gripper_open and self._gripper_sent:
            return
        g = self._require().gripper
        (g.release if open_ else g.grasp)(delay=0.0)
        self._gripper_open, self._gripper_sent = open_, True

    # -- safety: effort guard, hardware errors --------------------------------------------------------
    def _effort_ok(self) -> bool:
        c = self.config
        if not c.max_effort or self.fault is not None:
            return self.fault is None
        effort = np.abs(self._joint_values("effort"))
        limit = np.asarray(c.max_effort, dtype=np.float64)
        over = np.nonzero(effort - limit > c.effort_margin)[0]
        if over.size == 0:
            return True
        names = self._require().arm.group_info.joint_names
        detail = ", ".join(f"{names[i]} {effort[i]:.0f} > {limit[i]:.0f}" for i in over)
        self._stop(f"overload: joint effort {detail} (something is blocking the arm)")
        return False

    def _stop(self, reason: str) -> None:
        """Freeze where we are and open the gripper (releases a jammed object); latch the fault."""
        bot = self._require()
        q = self._joint_values("position")
        bot.core.robot_write_commands(self.config.group_name, [float(x) for x in q])
        bot.gripper.release(delay=0.0)
        self._gripper_open = True
        self.fault = reason
        log.error("WidowX stopped: %s. Clear the cause, release the e-stop and call arm/recover.", reason)

    def check_motors(self, reboot: bool) -> list[str]:
        """Read Hardware_Error_Status of every arm motor; smart-reboot the ones in error if `reboot`.

        Returns the names still in error afterwards. Blocking service calls: not for every control step.
        """
        bot = self._require()
        self._last_status_check = time.monotonic()
        names = list(bot.arm.group_info.joint_names)
        values = self._read_hw_errors()
        errored = [n for n, v in zip(names, values, strict=True) if int(v) != 0]
        if errored and reboot:
            log.warning("motor hardware error on %s (%s); smart reboot", errored,
                        {n: _decode_hw_error(int(v)) for n, v in zip(names, values, strict=True) if int(v)})
            # smart_reboot: only motors in error are rebooted, and torque is re-enabled on them afterwards.
            bot.core.robot_reboot_motors("group", self.config.group_name, True, True)
            values = self._read_hw_errors()
            errored = [n for n, v in zip(names, values, strict=True) if int(v) != 0]
        return errored

    def _read_hw_errors(self) -> list[int]:
        """Hardware_Error_Status per arm motor. The ROS 2 SDK spins 0.1 s for the reply and then reads
        `future.result().values`: on a slow servo bus that is None.values (AttributeError). One failed read is
        logged and retried next period; three in a row are a fault (the status of the motors is unknown)."""
        bot = self._require()
        try:
            values = [int(v) for v in bot.core.robot_get_motor_registers("group", self.config.group_name,
                                                                         "Hardware_Error_Status").values]
        except (AttributeError, TypeError) as e:
            self._status_read_failures += 1
            log.warning("reading Hardware_Error_Status failed (%s), %d in a row", e, self._status_read_failures)
            if self._status_read_failures >= 3:
                raise ArmFault("cannot read the motors' Hardware_Error_Status (3 reads in a row failed): check the "
                               "U2D2 cable and the servo bus, then arm/recover") from e
            return [0] * len(self._require().arm.group_info.joint_names)
        self._status_read_failures = 0
        return values

    def _maybe_check_status(self) -> None:
        period = self.config.status_check_period_s
        if period <= 0 or self.fault is not None or time.monotonic() - self._last_status_check < period:
            return
        try:
            errored = self.check_motors(reboot=False)
        except ArmFault as e:
            self._stop(str(e))
            return
        if errored:
            self._stop(f"motor hardware error on {errored}")

    def recover(self, home: bool = True) -> str:
        """After a fault: reboot motors in error, torque on, and (home=True) back to the home pose slowly.

        The rig node calls recover(home=False) while the e-stop is engaged, then homes through arm/home once the
        e-stop is released, so that the e-stop can interrupt that move. Returns a status line."""
        errored = self.check_motors(reboot=True)
        if errored:
            return f"motors {errored} still report a hardware error after reboot; power-cycle the arm"
        c = self.config
        self.bot.core.robot_torque_enable("group", c.group_name, True)
        self.bot.arm.capture_joint_positions()  # the SDK's reference after torque-on (its own advice)
        self.fault = None
        if not home:
            return "recovered: motors OK and torqued on; release the e-stop, then call arm/home"
        self.go_home()
        self.bot.arm.set_trajectory_time(moving_time=c.moving_time_s, accel_time=c.accel_time_s)
        return "recovered: at home pose"

    def go_home(self, blocking: bool = True) -> float:
        """Slow move to the home pose. blocking=False: start it and return its duration (s); the caller
        (ArmController.begin_move) waits, and an e-stop meanwhile halts it at the measured joints. The per-step
        trajectory time is restored at the next step's publish (see `send_action`)."""
        c, arm = self.config, self._require().arm
        slow = dict(moving_time=c.slow_moving_time_s, accel_time=c.slow_moving_time_s / 4, blocking=blocking)
        if c.home_joints_rad:
            arm.set_joint_positions(list(c.home_joints_rad), **slow)
        else:
            arm.go_to_home_pose(**slow)
        if blocking:
            # Slow homing rewrote the profile registers; put the per-step trajectory time back.
            arm.set_trajectory_time(moving_time=c.moving_time_s, accel_time=c.accel_time_s)
        else:
            self._restore_timing = True
        return float(c.slow_moving_time_s)


def _decode_hw_error(value: int) -> str:
    return ", ".join(name for bit, name in HW_ERROR_BITS.items() if value & (1 << bit)) or f"code {value}"
