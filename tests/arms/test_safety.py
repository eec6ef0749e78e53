import numpy as np
import pytest

from robot_stack.arms.safety import (
    CommandRejected,
    SafetyConfig,
    clamp_ee_delta,
    limit_joint_command,
    limit_pose_step,
    mat_to_rpy,
    quat_xyzw_to_mat,
    rotation_angle,
    rpy_to_mat,
    validate_command,
)
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
    a = clamp_ee_delta(np.array([0.15, 0.2, 0.0, 0, 0, 0, 1.0]), np.array([0.3, 0.0, 0.2]), CFG)
    assert np.linalg.norm(a[:3]) == pytest.approx(0.04)
    assert a[1] / a[0] == pytest.approx(0.2 / 0.15)


def test_clamp_keeps_target_inside_workspace_box():
    ee = np.array([0.49, 0.0, 0.03])
    a = clamp_ee_delta(np.array([0.03, 0, -0.03, 0, 0, 0, 0.5]), ee, CFG)
    target = ee + a[:3]
    assert target[0] == pytest.approx(0.5) and target[2] == pytest.approx(0.02)


def test_clamp_limits_rotation_and_gripper():
    a = clamp_ee_delta(np.array([0, 0, 0, 1.0, -1.0, 0.1, 3.0]), np.array([0.3, 0, 0.2]), CFG)
    # One geodesic angle, not a per-axis clip (which let the combined rotation reach sqrt(3) x the limit).
    assert rotation_angle(rpy_to_mat(a[3:6])) == pytest.approx(0.25, abs=1e-9)
    assert a[6] == 1.0


def test_bad_workspace_box_is_refused():
    with pytest.raises(ValueError, match="workspace box"):
        SafetyConfig(workspace_min_m=(0.5, 0, 0), workspace_max_m=(0.1, 1, 1), max_delta_m=0.1,
                     max_delta_rad=0.1, max_command_age_ms=100)


def _random_rotation(rng, max_angle=np.pi):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    from robot_stack.arms.safety import _rotvec_to_mat
    return _rotvec_to_mat(axis * rng.uniform(0, max_angle))


def test_clamp_fuzz_step_and_box_hold_from_inside_and_outside():
    """T1/T2: random actions up to +-1e300 from measured poses inside AND outside the box."""
    rng = np.random.default_rng(0)
    for i in range(3000):
        inside = i % 2 == 0
        ee = rng.uniform([0.1, -0.3, 0.02], [0.5, 0.3, 0.4]) if inside else rng.uniform([-0.2, -0.8, -0.3], [0.9, 0.8, 0.8])
        scale = 10.0 ** rng.integers(-6, 300)
        action = np.concatenate([rng.normal(size=6) * scale, [rng.normal() * 3]])
        quat = rng.normal(size=4)
        a = clamp_ee_delta(action, ee, CFG, quat)
        assert np.all(np.isfinite(a))
        assert np.linalg.norm(a[:3]) <= CFG.max_delta_m + 1e-12
        assert rotation_angle(rpy_to_mat(a[3:6])) <= CFG.max_delta_rad + 1e-9
        assert 0.0 <= a[6] <= 1.0
        after = CFG.box_excess_m(ee + a[:3])
        if inside:
            assert after <= 1e-12
        else:  # comes back towards the box, at most the clamp per step
            assert after <= CFG.box_excess_m(ee) + 1e-12


def test_zero_action_outside_box_does_not_jump_into_it():
    """H1: at the WidowX SDK home (outside a tight box) a zero action moved 6.1 cm; now it moves <= the clamp."""
    ee = np.array([0.458, 0.0, 0.361])
    cfg = SafetyConfig((0.1, -0.25, 0.02), (0.45, 0.25, 0.30), 0.03, 0.2, 500)
    a = clamp_ee_delta(np.zeros(7), ee, cfg)
    assert np.linalg.norm(a[:3]) == pytest.approx(0.03)
    assert cfg.box_excess_m(ee + a[:3]) < cfg.box_excess_m(ee)


ORIENT = SafetyConfig((0.1, -0.3, 0.02), (0.5, 0.3, 0.4), 0.04, 0.25, 500,
                      orientation_reference_rpy_rad=(0.0, np.pi / 2, 0.0), orientation_limits_rad=(0.5, 0.4, 1.6))


def test_orientation_limits_hold_under_continuous_rotation():
    rng = np.random.default_rng(1)
    for axis in range(3):
        for sign in (1, -1):
            mat = rpy_to_mat(ORIENT.orientation_reference_rpy_rad)
            for _ in range(60):
                action = np.zeros(7)
                action[3 + axis] = sign * 1.0
                pos, new = limit_pose_step(np.array([0.3, 0, 0.2]), mat, np.array([0.3, 0, 0.2]),
                                           rpy_to_mat(action[3:6]) @ mat, ORIENT)
                assert rotation_angle(new @ mat.T) <= ORIENT.max_delta_rad + 1e-9
                assert ORIENT.orientation_excess_rad(new) <= 1e-9
                mat = new
    # random orientations: never further out than the measured one
    for _ in range(500):
        meas = _random_rotation(rng)
        tgt = _random_rotation(rng)
        _, new = limit_pose_step(np.zeros(3) + 0.3, meas, np.zeros(3) + 0.3, tgt, ORIENT)
        assert ORIENT.orientation_excess_rad(new) <= ORIENT.orientation_excess_rad(meas) + 1e-9
        assert rotation_angle(new @ meas.T) <= ORIENT.max_delta_rad + 1e-9


def test_quaternion_and_rpy_helpers_agree():
    rpy = np.array([0.3, -0.2, 1.1])
    assert np.allclose(mat_to_rpy(rpy_to_mat(rpy)), rpy)
    c, s = np.cos(0.35), np.sin(0.35)
    assert np.allclose(quat_xyzw_to_mat([0, 0, s, c]), rpy_to_mat([0, 0, 0.7]))


def _planar_fk(q):
    """A 3-link planar arm (0.2 m links) in the x-z plane; yaw = sum of joints about base y."""
    q = np.asarray(q)
    angles = np.cumsum(q)
    x = 0.2 + 0.2 * np.sum(np.cos(angles))
    z = 0.2 + 0.2 * np.sum(np.sin(angles))
    return np.array([x, 0.0, z]), rpy_to_mat([0.0, -angles[-1], 0.0])


def test_joint_command_is_scaled_to_the_pose_and_joint_limits():
    cfg = SafetyConfig((0.1, -0.3, 0.02), (0.9, 0.3, 0.6), 0.04, 0.25, 500, max_joint_step_rad=0.3)
    rng = np.random.default_rng(2)
    for _ in range(300):
        q = rng.uniform(-1, 1, size=3)
        if cfg.box_excess_m(_planar_fk(q)[0]) > 0:
            continue
        q_cmd = q + rng.normal(size=3) * rng.choice([0.01, 0.3, 2.0])
        out = limit_joint_command(q, q_cmd, _planar_fk, cfg)
        assert 0.0 <= out.scale <= 1.0
        assert np.max(np.abs(out.q_rad - q)) <= 0.3 + 1e-9
        pos0, mat0 = _planar_fk(q)
        pos, mat = _planar_fk(out.q_rad)
        assert np.linalg.norm(pos - pos0) <= cfg.max_delta_m + 2e-4
        assert rotation_angle(mat @ mat0.T) <= cfg.max_delta_rad + 2e-3
        assert cfg.box_excess_m(pos) <= 2e-4
        if out.scale < 1.0:
            assert out.reason


def test_joint_command_within_limits_passes_unchanged():
    cfg = SafetyConfig((0.1, -0.3, 0.02), (0.9, 0.3, 0.6), 0.04, 0.25, 500, max_joint_step_rad=0.3)
    q = np.array([0.2, -0.3, 0.1])
    out = limit_joint_command(q, q + 0.01, _planar_fk, cfg)
    assert out.scale == 1.0 and out.reason == ""
    assert np.allclose(out.q_rad, q + 0.01)


def test_safety_config_refuses_bad_orientation_and_unknown_keys():
    with pytest.raises(ValueError, match="both"):
        SafetyConfig((0, 0, 0), (1, 1, 1), 0.1, 0.1, 100, orientation_limits_rad=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="unknown safety settings"):
        SafetyConfig.from_mapping({"workspace_min_m": [0, 0, 0], "workspace_max_m": [1, 1, 1], "max_delta_m": 0.1,
                                   "max_delta_rad": 0.1, "max_command_age_ms": 100, "max_deltaa_m": 1})
