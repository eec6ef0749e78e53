"""bc_conv: physical-unit actions within the normaliser's range, augmentation, config + registry."""

import numpy as np
import pytest
import torch

from robot_stack.policies.base import POLICIES, make_policy, policy_class
from robot_stack.policies.bc_conv import BCConvConfig, BCConvPolicy, random_shift
from robot_stack.registry import UnknownNameError


def test_select_action_physical_units(policy, obs, normalizer):
    action = policy.select_action(obs)
    assert action.shape == (7,) and action.dtype == np.float32
    assert np.all(np.isfinite(action))
    low, high = normalizer.action_bounds()
    assert np.all(action >= low - 1e-6) and np.all(action <= high + 1e-6)
    assert action[5] == pytest.approx(0.0)  # the constant (unused) dim maps back to its constant
    assert not policy.training


def test_select_action_names_missing_key(policy, obs):
    del obs["observation.images.wrist"]
    with pytest.raises(KeyError, match="observation.images.wrist"):
        policy.select_action(obs)


def test_compute_loss_is_differentiable(policy, obs_factory):
    obs = [obs_factory(i) for i in range(4)]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])) for k in obs[0]}
    batch["action"] = torch.tensor([[0.01, 0, 0, 0, 0, 0, 1.0]] * 4)
    policy.train()
    loss, info = policy.compute_loss(batch)
    loss.backward()
    assert set(info) == {"loss", "mse", "bce"} and np.isfinite(info["loss"])
    assert all(p.grad is not None for p in policy.parameters())


def test_random_shift_is_an_integer_translation():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert torch.equal(random_shift(x, 0), x)
    torch.manual_seed(0)
    y = random_shift(x, 2)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="replicate")
    for b in range(2):  # every output is one window of the padded input
        assert any(torch.equal(y[b], padded[b, :, i:i + 8, j:j + 8]) for i in range(5) for j in range(5))


def test_config_from_dict_refuses_unknown_keys_and_restores_tuples():
    cfg = BCConvConfig.from_dict({"cameras": ["front"], "hidden_dims": [64, 64]})
    assert cfg.cameras == ("front",) and cfg.hidden_dims == (64, 64)
    with pytest.raises(ValueError, match="image_size"):
        BCConvConfig.from_dict({"image_size": 64})


def test_registry(normalizer):
    assert policy_class("bc_conv") is BCConvPolicy and "bc_conv" in POLICIES
    assert isinstance(make_policy("bc_conv", {"cameras": ["front"], "image_size_px": 16}, normalizer), BCConvPolicy)
    with pytest.raises(UnknownNameError, match="known: .*bc_conv"):
        policy_class("diffusion_transformer_xl")
