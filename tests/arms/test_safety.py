import numpy as np
import pytest

from robot_stack.arms.safety import CommandRejected, SafetyConfig, clamp_ee_delta, validate_command
from robot_stack.types import EE_DELTA_ACTION_NAMES

CFG = SafetyConfig(workspace_min_m=(0.1, -0.3, 0.02), workspace_max_m=(0.5, 0.3, 0.4),
                   max_delta_m=0.04, max_delta_rad=0.25, max_command_age_ms=500)


def test_validate_accepts_well_formed_command():
    a = validate_command(EE_DELTA_ACTION_NAMES, [0.01, 0, 0, 0, 0, 0, 1.0], "ee_delta")
    assert a.shape == (7,)


@pytest.mark.parametrize("names,values,needle", [
    (EE_DELTA_ACTION_NAMES, [0.0] * 6, "needs 7"),
    (EE_DELTA_ACTION_NAMES, [0, 0, float("nan"), 0, 0, 0, 1], "NaN"),
    (EE_DELTA_ACTION_NAMES, [0, 0, float("inf"), 0, 0, 0, 1], "NaN"),
    (("x", "y", "z", "a", "b", "c", "g"), [0.0] * 7, "do not match"),
])
def test_validate_rejects_malformed(names, values, needle):
    with pytest.raises(CommandRejected, match=needle):
        validate_command(names, values, "ee_delta")


def test_clamp_scales_translation_keeping_direction():
    a = clamp_ee_delta(np.array([0.3, 0.4, 0.0, 0, 0, 0, 1.0]), np.array([0.3, 0.0, 0.2]), CFG)
    assert np.linalg.norm(a[:3]) == pytest.approx(0.04)
    assert a[1] / a[0] == pytest.approx(0.4 / 0.3)


def test_clamp_keeps_target_inside_workspace_box():
    ee = np.array([0.49, 0.0, 0.03])
    a = clamp_ee_delta(np.array([0.03, 0, -0.03, 0, 0, 0, 0.5]), ee, CFG)
    target = ee + a[:3]
    assert target[0] == pytest.approx(0.5) and target[2] == pytest.approx(0.02)


def test_clamp_limits_rotation_and_gripper():
    a = clamp_ee_delta(np.array([0, 0, 0, 1.0, -1.0, 0.1, 3.0]), np.array([0.3, 0, 0.2]), CFG)
    assert a[3] == pytest.approx(0.25) and a[4] == pytest.approx(-0.25) and a[5] == pytest.approx(0.1)
    assert a[6] == 1.0


def test_bad_workspace_box_is_refused():
    with pytest.raises(ValueError, match="workspace box"):
        SafetyConfig(workspace_min_m=(0.5, 0, 0), workspace_max_m=(0.1, 1, 1), max_delta_m=0.1,
                     max_delta_rad=0.1, max_command_age_ms=100)
