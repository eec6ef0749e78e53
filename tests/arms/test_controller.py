"""ArmController over the real MuJoCo arm: clamp, watchdog hold, stale rejection, e-stop latch."""

import time

import numpy as np
import pytest

from robot_stack.arms.controller import ESTOPPED, HOLDING, OK, ArmController
from robot_stack.arms.safety import CommandRejected, SafetyConfig
from robot_stack.types import EE_DELTA_ACTION_NAMES

SAFETY = SafetyConfig(workspace_min_m=(0.10, -0.3, 0.05), workspace_max_m=(0.45, 0.3, 0.35),
                      max_delta_m=0.02, max_delta_rad=0.2, max_command_age_ms=500)


@pytest.fixture(scope="module")
def sim():
    from robot_stack.sim.env import SimConfig, TabletopSim

    s = TabletopSim(SimConfig(image_size_px=64, cameras=("front",)))
    yield s
    s.close()


@pytest.fixture
def ctl(sim):
    from robot_stack.arms.sim_arm import SimArm

    sim.reset(seed=0)
    arm = SimArm(sim)
    arm.reset_gripper_command()
    return ArmController(arm, SAFETY)


def _send(ctl, action, age_ms=0.0, source="teleop:test"):
    now = time.time_ns()
    ctl.submit(EE_DELTA_ACTION_NAMES, action, now - int(age_ms * 1e6), now, source)
    return ctl.tick(time.time_ns())


def test_executes_and_clamps_per_step_motion(ctl):
    before = ctl.arm.get_state().ee_pose[:3].copy()
    ex = _send(ctl, [0.10, 0, 0, 0, 0, 0, 1.0])  # asks for 10 cm in one step
    moved = ctl.arm.get_state().ee_pose[:3] - before
    assert ex is not None and ctl.status == OK
    assert np.linalg.norm(ex.action[:3]) <= SAFETY.max_delta_m + 1e-6
    assert 0.01 < moved[0] <= SAFETY.max_delta_m + 0.005


def test_workspace_box_is_never_left(ctl):
    for _ in range(25):  # push down into the table for 5 s of sim time
        _send(ctl, [0, 0, -0.02, 0, 0, 0, 1.0])
    assert ctl.arm.get_state().ee_pose[2] >= SAFETY.workspace_min_m[2] - 0.005


def test_no_command_means_hold_and_each_command_runs_once(ctl):
    _send(ctl, [0.02, 0, 0, 0, 0, 0, 1.0])
    pose = ctl.arm.get_state().ee_pose[:3].copy()
    for _ in range(5):
        assert ctl.tick(time.time_ns()) is None
    assert ctl.status == HOLDING
    assert np.linalg.norm(ctl.arm.get_state().ee_pose[:3] - pose) < 0.003  # did not replay the last motion


def test_stale_and_malformed_commands_are_rejected_and_counted(ctl):
    with pytest.raises(CommandRejected, match="stale"):
        _send(ctl, [0.01, 0, 0, 0, 0, 0, 1.0], age_ms=2000)
    with pytest.raises(CommandRejected, match="NaN"):
        _send(ctl, [float("nan"), 0, 0, 0, 0, 0, 1.0])
    assert ctl.n_rejected == 2 and ctl.n_executed == 0
    assert "NaN" in ctl.last_rejection


def test_estop_latches_until_released(ctl):
    ctl.set_estop(True, "operator")
    pose = ctl.arm.get_state().ee_pose[:3].copy()
    assert _send(ctl, [0.02, 0, 0, 0, 0, 0, 1.0]) is None
    assert ctl.status == ESTOPPED
    assert np.linalg.norm(ctl.arm.get_state().ee_pose[:3] - pose) < 0.003
    ctl.set_estop(False, "")
    assert _send(ctl, [0.02, 0, 0, 0, 0, 0, 1.0]) is not None and ctl.status == OK


def test_command_stamped_in_the_future_is_rejected(ctl):
    now = time.time_ns()
    with pytest.raises(CommandRejected, match="future"):
        ctl.submit(EE_DELTA_ACTION_NAMES, [0.01, 0, 0, 0, 0, 0, 1.0], now + 5_000_000_000, now, "teleop:test")
