"""Contract between the WidowX driver and the Interbotix ROS 2 Python API (review T13).

The SDK cannot be installed here (it needs the Interbotix ROS workspace), so its API is pinned below,
transcribed from interbotix_ros_toolboxes `interbotix_xs_modules/xs_robot/{arm,core,gripper}.py` (ROS 2
branches). Two checks keep the driver and the fake honest against it:
1. every SDK call the driver makes in a full session (connect, steps, hold, halt, non-blocking home,
   recover, disconnect) is a pinned method and its arguments bind to the pinned signature;
2. the fake's methods have exactly the pinned signatures, and its attributes the driver reads exist in the SDK.
"""

import inspect

import numpy as np

from robot_stack.arms.safety import SafetyConfig
from robot_stack.arms.widowx import WidowX, WidowXConfig
from robot_stack_testing.fake_interbotix import FakeInterbotixManipulatorXS


def _sig(text: str) -> inspect.Signature:
    ns: dict = {}
    exec(f"def f{text}: pass", ns)  # noqa: S102 - a signature literal, nothing else
    return inspect.signature(ns["f"])


SDK = {
    "arm": {
        "set_trajectory_time": _sig("(moving_time=None, accel_time=None)"),
        "set_ee_pose_matrix": _sig("(T_sd, custom_guess=None, execute=True, moving_time=None, accel_time=None, "
                                   "blocking=True)"),
        "set_joint_positions": _sig("(joint_positions, moving_time=None, accel_time=None, blocking=True)"),
        "go_to_home_pose": _sig("(moving_time=None, accel_time=None, blocking=True)"),
        "go_to_sleep_pose": _sig("(moving_time=None, accel_time=None, blocking=True)"),
        "capture_joint_positions": _sig("()"),
    },
    "core": {
        "robot_write_commands": _sig("(group_name, commands)"),
        "robot_get_motor_registers": _sig("(cmd_type, name, reg)"),
        "robot_set_motor_registers": _sig("(cmd_type, name, reg, value)"),
        "robot_reboot_motors": _sig("(cmd_type, name, enable, smart_reboot=False)"),
        "robot_torque_enable": _sig("(cmd_type, name, enable)"),
    },
    "gripper": {
        "grasp": _sig("(delay=1.0)"),
        "release": _sig("(delay=1.0)"),
    },
}
# Attributes (not methods) of the SDK objects that the driver reads.
SDK_ATTRS = {
    "arm": {"group_info", "robot_des", "joint_commands"},
    "core": {"joint_states", "js_index_map"},
    "gripper": set(),
}
SDK_GROUP_INFO = {"joint_names", "num_joints", "joint_lower_limits", "joint_upper_limits", "joint_velocity_limits",
                  "joint_sleep_positions"}


class _Recorder:
    """Wraps one SDK component; records (component, name, args, kwargs) of every call and every attribute read."""

    def __init__(self, component: str, target, log: list):
        object.__setattr__(self, "_c", component)
        object.__setattr__(self, "_t", target)
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name):
        value = getattr(self._t, name)
        if callable(value) and not isinstance(value, type):
            def call(*args, **kwargs):
                self._log.append((self._c, name, args, kwargs))
                return value(*args, **kwargs)
            return call
        self._log.append((self._c, name, None, None))
        return value


def _session() -> list:
    log: list = []

    def factory(cfg, node):
        bot = FakeInterbotixManipulatorXS(robot_model=cfg.robot_model, moving_time=cfg.moving_time_s,
                                          accel_time=cfg.accel_time_s)
        wrapped = type("Bot", (), {})()
        wrapped.arm = _Recorder("arm", bot.arm, log)
        wrapped.core = _Recorder("core", bot.core, log)
        wrapped.gripper = _Recorder("gripper", bot.gripper, log)
        wrapped.raw = bot
        return wrapped

    arm = WidowX(WidowXConfig(home_joints_rad=(0.0, -0.5, 0.5, 0.0, 0.6, 0.0), max_effort=(600.0,) * 6,
                              status_check_period_s=1e-9), sdk_factory=factory)
    arm.set_safety(SafetyConfig((0.0, -0.6, -0.2), (0.7, 0.6, 0.7), 0.05, 0.3, 500, max_joint_step_rad=0.5))
    arm.connect()
    for g in (1.0, 0.0, 1.0):
        arm.send_action(np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.05, g]))
    arm.hold()
    arm.halt()
    arm.go_home(blocking=False)
    arm.send_action(np.zeros(7))
    arm.bot.raw.inject_effort("elbow", 5000)
    arm.send_action(np.zeros(7))
    arm.bot.raw.inject_effort("elbow", 0)
    arm.bot.raw.inject_hardware_error("wrist_angle")
    arm.recover(home=False)
    arm.recover(home=True)
    arm.disconnect(park=True)
    return log


def test_every_sdk_call_the_driver_makes_binds_to_the_pinned_api():
    log = _session()
    called = set()
    for component, name, args, kwargs in log:
        if args is None:
            assert name in SDK_ATTRS[component] or name in SDK[component], f"driver reads {component}.{name}, not in the SDK"
            continue
        assert name in SDK[component], f"driver calls {component}.{name}, which the Interbotix SDK does not have"
        SDK[component][name].bind(*args, **kwargs)  # raises TypeError on a wrong argument
        called.add((component, name))
    # The session exercises the paths that matter (steps publish, status reads, homing, recovery, parking).
    assert {("core", "robot_write_commands"), ("arm", "set_ee_pose_matrix"), ("arm", "capture_joint_positions"),
            ("core", "robot_get_motor_registers"), ("arm", "set_joint_positions"),
            ("core", "robot_reboot_motors"), ("arm", "go_to_sleep_pose")} <= called


def test_fake_has_the_sdk_signatures_and_attributes():
    bot = FakeInterbotixManipulatorXS()
    for component, methods in SDK.items():
        obj = getattr(bot, component)
        for name, sig in methods.items():
            got = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(obj, name)).parameters.values()]
            want = [(p.name, p.kind, p.default) for p in sig.parameters.values()]
            assert got == want, f"fake {component}.{name} drifted: {got} vs the SDK's {want}"
        for attr in SDK_ATTRS[component]:
            assert hasattr(obj, attr), f"fake {component} lacks {attr}"
    assert set(vars(bot.arm.group_info)) >= SDK_GROUP_INFO


def test_fake_velocity_check_compares_with_joint_commands_as_the_sdk_does():
    """Without capture_joint_positions, the SDK rejects a small step far from the last SDK publish (H4)."""
    bot = FakeInterbotixManipulatorXS(moving_time=0.2)
    bot.core.robot_torque_enable("group", "arm", True)
    bot.arm.set_joint_positions([0.0, -0.5, 0.5, 0.0, 0.6, 0.0], moving_time=2.0)  # homing: joint_commands = home
    bot.arm.set_trajectory_time(moving_time=0.2)
    far = np.array([1.0, -0.5, 0.5, 0.0, 0.6, 0.0])
    bot.core.robot_write_commands("arm", list(far))  # the driver's per-step publish: joint_commands unchanged
    from robot_stack.arms import poses
    from robot_stack_testing.fake_interbotix import WX250S_M, WX250S_SLIST

    target = poses.fk_space(WX250S_M, WX250S_SLIST, far + np.array([0.01, 0, 0, 0, 0, 0]))
    _, ok = bot.arm.set_ee_pose_matrix(target, custom_guess=list(far), execute=False)
    assert not ok  # 1 rad from the stale joint_commands in 0.2 s: over the velocity limit
    bot.arm.capture_joint_positions()
    _, ok = bot.arm.set_ee_pose_matrix(target, custom_guess=list(far), execute=False)
    assert ok
