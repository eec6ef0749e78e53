"""Normalizer: [q01, q99] -> [-1, 1] round trip, gripper passthrough, constant dims, plain-JSON file."""

import json

import numpy as np
import pytest

from robot_stack.policies.normalizer import Normalizer


def test_round_trip_and_range(normalizer):
    rng = np.random.default_rng(1)
    actions = rng.normal(0.0, 0.01, size=(50, 7))
    actions[:, 5] = 0.0
    actions[:, 6] = rng.uniform(0, 1, 50)
    n = normalizer.normalize_action(actions)
    np.testing.assert_allclose(normalizer.unnormalize_action(n), actions, atol=1e-12)
    np.testing.assert_array_equal(n[:, 6], actions[:, 6])  # gripper is never normalised
    low, high = normalizer.action_q01, normalizer.action_q99
    inside = np.all((actions[:, :5] >= low[:5]) & (actions[:, :5] <= high[:5]), axis=1)
    assert inside.any()
    assert np.all(np.abs(n[inside, :5]) <= 1.0 + 1e-9)
    np.testing.assert_allclose(normalizer.normalize_action(low)[:5], -1.0)
    np.testing.assert_allclose(normalizer.normalize_action(high)[:5], 1.0)


def test_constant_dims_do_not_divide_by_zero():
    actions = np.zeros((20, 7))
    actions[:, 0] = np.linspace(-0.02, 0.02, 20)
    actions[:, 3] = 0.1  # constant, non-zero
    actions[:, 6] = 1.0
    states = np.ones((20, 14))  # every state dim constant: std 0
    norm = Normalizer.fit(actions, states)
    with np.errstate(all="raise"):
        n = norm.normalize_action(actions)
        back = norm.unnormalize_action(n)
        s = norm.normalize_state(states)
    assert np.all(np.isfinite(n)) and np.all(np.isfinite(s))
    np.testing.assert_array_equal(n[:, 1:6], 0.0)
    np.testing.assert_allclose(back, actions, atol=1e-12)
    np.testing.assert_array_equal(s, 0.0)
    # Whatever the network outputs on a constant dim, the physical action is the constant.
    np.testing.assert_allclose(norm.unnormalize_action(np.full(7, 0.7))[3], 0.1)
    assert all(np.all(np.isfinite(v)) for v in norm.tensors().values())


def test_json_round_trip_is_plain_numbers(normalizer, tmp_path):
    path = tmp_path / "normalizer.json"
    normalizer.save(path)
    raw = json.loads(path.read_text())
    assert raw["action"]["passthrough_dims"] == [6]
    assert all(isinstance(v, float) for v in raw["action"]["q01"] + raw["state"]["std"])
    back = Normalizer.load(path)
    for name in ("action_q01", "action_q99", "state_mean", "state_std"):
        np.testing.assert_array_equal(getattr(back, name), getattr(normalizer, name))


def test_from_json_refuses_non_finite(normalizer):
    d = normalizer.to_json()
    d["state"]["std"][0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        Normalizer.from_json(d)


def test_bounds_mode_uses_the_rig_limits_not_the_data(tmp_path):
    """PTR normalises ee_delta from fixed physical bounds: a never-commanded dimension stays near 0 instead of
    being stretched to ±1, and the range survives the JSON round trip."""
    from robot_stack.policies.normalizer import ee_delta_bounds

    rng = np.random.default_rng(0)
    actions = np.zeros((200, 7))
    actions[:, :3] = rng.uniform(-0.02, 0.02, (200, 3))
    actions[:, 3] = rng.normal(0.0, 1e-3, 200)                  # a rotation the teleoperator never commanded
    actions[:, 6] = rng.integers(0, 2, 200)
    actions[0, 1] = 0.08                                          # one step beyond the 5 cm limit
    env = rng.normal(size=(200, 16))
    norm = Normalizer.fit(actions, rng.normal(size=(200, 14)), env_states=env,
                          action_bounds=ee_delta_bounds(0.05, 0.25))
    assert norm.mode == "bounds" and norm.env_state_dim == 16
    n = norm.normalize_action(actions)
    np.testing.assert_allclose(n[:, :3], actions[:, :3] / 0.05, atol=1e-12)
    assert np.abs(n[:, 3]).max() < 0.05                           # quantile mode would put it at ±1
    assert norm.clipped_fraction(actions)[1] == pytest.approx(1 / 200)
    assert norm.clipped_fraction(actions)[6] == 0.0              # the gripper is never "clipped"
    quantile = Normalizer.fit(actions, rng.normal(size=(200, 14)))
    assert np.abs(quantile.normalize_action(actions)[:, 3]).max() > 0.9
    norm.save(tmp_path / "n.json")
    back = Normalizer.load(tmp_path / "n.json")
    assert back.mode == "bounds"
    np.testing.assert_array_equal(back.action_q99, norm.action_q99)
    np.testing.assert_allclose(back.env_state_mean, env.mean(0))
    with pytest.raises(ValueError, match="positive"):
        ee_delta_bounds(0.0, 0.25)
