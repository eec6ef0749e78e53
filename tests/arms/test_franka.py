"""Franka driver settings (no robot needed). The driver itself runs against the real franky library and a
franky-sim server in test_franka_franky_sim.py."""

import pytest

from robot_stack.arms.factory import make_arm

HOME = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
SAFETY = {"workspace_min_m": [0.3, -0.25, 0.05], "workspace_max_m": [0.7, 0.25, 0.6],
          "max_delta_m": 0.02, "max_delta_rad": 0.1, "max_command_age_ms": 300}


def test_ip_home_and_safety_are_required_site_values():
    pytest.importorskip("robot_stack.arms.safety")
    with pytest.raises(ValueError, match="calibration/<rig>/arm.yaml"):
        make_arm("franka", {"home_joints_rad": HOME, "safety": SAFETY})
    with pytest.raises(ValueError, match="7 values"):
        make_arm("franka", {"ip": "192.0.2.10", "home_joints_rad": [0, 1], "safety": SAFETY})
    with pytest.raises(ValueError, match="safety"):
        make_arm("franka", {"ip": "192.0.2.10", "home_joints_rad": HOME})
    with pytest.raises(ValueError, match="realtime"):
        make_arm("franka", {"ip": "192.0.2.10", "home_joints_rad": HOME, "safety": SAFETY, "realtime": "off"})
    with pytest.raises(ValueError, match="unknown Franka settings"):
        make_arm("franka", {"ip": "192.0.2.10", "home_joints_rad": HOME, "safety": SAFETY,
                            "max_reference_offset_m": 0.05})


def test_driver_step_limit_is_the_tighter_of_driver_and_safety():
    arm = make_arm("franka", {"ip": "192.0.2.10", "home_joints_rad": HOME, "safety": SAFETY,
                              "max_step_m": 0.01, "max_step_rad": 0.5})
    assert arm._limits.max_delta_m == 0.01 and arm._limits.max_delta_rad == 0.1
