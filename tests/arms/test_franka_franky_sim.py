"""The Franka driver with the REAL franky 2.0 library against a franky-sim (MuJoCo FR3) server on loopback.

franky-sim binds the libfranka ports on a loopback address of its own (127.x.y.z), so each session picks an
unused one instead of a port. Skipped only where franky / franky_sim are not installed (extra `franka`).
"""

import random
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_stack.arms import poses
from robot_stack.arms.factory import make_arm
from robot_stack.arms.safety import SafetyConfig

franky = pytest.importorskip("franky", reason="franky-control not installed: pip install robot_stack[franka]")
pytest.importorskip("franky_sim", reason="franky-sim not installed: pip install robot_stack[franka]")

HOME = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]  # ee at about (0.31, 0, 0.49)
SAFETY = {"workspace_min_m": [0.25, -0.25, 0.30], "workspace_max_m": [0.65, 0.25, 0.60],
          "max_delta_m": 0.02, "max_delta_rad": 0.1, "max_command_age_ms": 300}


@pytest.fixture(scope="session")
def franky_sim_host():
    host = f"127.{random.randint(1, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    proc = subprocess.Popen([sys.executable, "-m", "robot_stack.arms.franky_sim_server", host], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    line = proc.stdout.readline()  # blocks until the server is bound (a few s: MuJoCo + pinocchio load)
    if "READY" not in line:
        proc.kill()
        pytest.fail(f"franky-sim did not start on {host}: {line}{proc.stdout.read()}")
    yield host
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def arm(franky_sim_host):
    a = make_arm("franka", {"ip": franky_sim_host, "home_joints_rad": HOME, "safety": SAFETY,
                            "realtime": "ignore", "homing_dynamics_factor": 0.3})
    a.connect()
    yield a
    a.disconnect()


def _settle(arm, s=0.6):
    time.sleep(s)
    return poses.pose7_to_matrix(arm.get_state().ee_pose)


def test_connect_homes_and_a_command_moves_the_commanded_amount(arm):
    # Cartesian impedance leaves the nullspace free: the joints drift ~0.03 rad from home once tracking.
    np.testing.assert_allclose(arm.get_state().joint_positions_rad, HOME, atol=0.05)
    assert arm.fault is None and arm.robot.is_in_control
    x0 = _settle(arm, 0.3)[:3, 3]
    for _ in range(3):
        sent = arm.send_action(np.array([0.01, 0, 0, 0, 0, 0, 1]))
        np.testing.assert_allclose(sent[:3], [0.01, 0, 0], atol=1e-6)
        time.sleep(0.3)  # let the arm catch up: the reference may only lead the measured pose by max_delta_m
    moved = _settle(arm)[:3, 3] - x0
    # impedance tracking: within 5 mm (measured: ~1 mm in x, ~3 mm sag in z at 1200 N/m)
    np.testing.assert_allclose(moved, [0.03, 0, 0], atol=0.005)


def test_hold_re_anchors_the_reference_at_the_measured_pose(arm):
    arm.send_action(np.array([0.02, 0, 0, 0, 0, 0.1, 1]))  # reference ahead of the arm
    x_before = arm.get_state().ee_pose[:3]
    arm.hold()
    x_after = arm.get_state().ee_pose[:3]
    # The reference is where the arm was during hold(): between the readings around it (the arm is moving).
    slack = np.linalg.norm(x_after - x_before) + 1e-3
    assert np.linalg.norm(arm.reference[:3, 3] - x_after) <= slack
    assert np.linalg.norm(arm.reference[:3, 3] - x_before) <= slack
    before = _settle(arm)[:3, 3]
    arm.hold()
    assert np.linalg.norm(_settle(arm)[:3, 3] - before) < 0.003  # holding does not drift


def test_home_then_command_moves(arm):
    arm.send_action(np.array([0.02, 0.02, 0, 0, 0, 0, 1]))
    arm.go_home()
    assert arm.fault is None and arm.robot.is_in_control
    x0 = _settle(arm, 0.3)[:3, 3]
    arm.send_action(np.array([0, 0.02, 0, 0, 0, 0, 1]))
    assert _settle(arm)[1, 3] - x0[1] > 0.015


def test_box_floor_stream_keeps_the_reference_inside_the_box(arm):
    lo, hi = np.array(SAFETY["workspace_min_m"]), np.array(SAFETY["workspace_max_m"])
    box = SafetyConfig.from_mapping(SAFETY)
    lead, worst_excess = [], 0.0
    for i in range(30):  # drive down through the floor at 5x the step limit, then wall-drive sideways
        before = poses.pose7_to_matrix(arm.get_state().ee_pose)
        arm.send_action(np.array([0, 0.1 if i >= 20 else 0, -0.1, 0, 0, 0, 1]))
        ref = arm.reference
        # Inside the box -- or, once impedance sag has put the arm a few mm under the floor, no further out
        # than the arm is (limit_pose_step's contract), so it is never a pull out of the box.
        assert box.box_excess_m(ref[:3, 3]) <= max(box.box_excess_m(before[:3, 3]), 0.0) + 1e-4
        worst_excess = max(worst_excess, box.box_excess_m(ref[:3, 3]))
        lead.append(np.linalg.norm(ref[:3, 3] - before[:3, 3]))
        time.sleep(0.15)
    assert max(lead) <= SAFETY["max_delta_m"] + 1e-3  # state read a moment before the limit's own read
    assert worst_excess < 0.005, f"reference {worst_excess * 1e3:.1f} mm outside the box"
    z = _settle(arm)[2, 3]
    assert z > lo[2] - 0.005, f"measured z {z} below the box floor {lo[2]}"
    for _ in range(20):  # the floor is reached at the arm's own pace (the reference leads it by one step)
        arm.send_action(np.array([0, 0, -0.1, 0, 0, 0, 1]))
        assert box.box_excess_m(arm.reference[:3, 3]) < 0.005
        if arm.reference[2, 3] <= lo[2] + 1e-6:
            break
        time.sleep(0.3)
    assert arm.reference[2, 3] == pytest.approx(lo[2], abs=1e-6)  # driven to the floor, and no further
    assert arm.reference[1, 3] <= hi[1] + 1e-9


def test_nan_action_is_refused_without_motion(arm):
    ref = arm.reference
    with pytest.raises(ValueError, match="finite"):
        arm.send_action(np.array([np.nan, 0, 0, 0, 0, 0, 1]))
    np.testing.assert_allclose(arm.reference, ref)


def test_ended_motion_is_a_fault_and_recover_restarts(arm):
    # A reflex ends the motion; franky-sim produces no reflex on demand, so end it the way one would:
    # the motion stops and the robot is no longer in control. The driver must see it (fail closed).
    arm.tracker.stop()
    sent = arm.send_action(np.array([0.01, 0, 0, 0, 0, 0, 1]))
    assert np.allclose(sent[:6], 0) and "not running" in arm.fault
    assert arm.recover().startswith("recovered") and arm.fault is None
    assert arm.send_action(np.array([0.01, 0, 0, 0, 0, 0, 1]))[0] == pytest.approx(0.01)


def test_gripper_change_does_not_stall_the_control_step(arm):
    # franky's gripper futures block in their destructor until the hand stops: a dropped one stalled ticks.
    for g in (0, 1, 0):
        t = time.monotonic()
        arm.send_action(np.array([0, 0, 0, 0, 0, 0, g], dtype=float))
        assert time.monotonic() - t < 0.1
