"""Adapter-only checkpoints: save, base-fingerprint check on load, hot swap between two PolicyRunner ticks."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import PolicyRunner
from robot_stack.policies.checkpoint import CheckpointError, PolicySchema, load_policy
from robot_stack.policies.openvla.finetune import fit_action_normalizer, save_adapter
from robot_stack.policies.openvla.policy import BASE_CACHE, OpenVLAConfig, OpenVLAPolicy
from robot_stack.types import rig_features
from robot_stack_testing.tiny_openvla import INSTRUCTION, build_tiny_openvla, synthetic_frames

SCHEMA = PolicySchema.from_features(rig_features({"front": (96, 128), "wrist": (48, 64)}, n_joints=6))


def trained_like_adapter(base_dir, seed: int) -> tuple[OpenVLAPolicy, object]:
    """A rank-4 adapter with random (non-zero) B matrices: acts differently from the base, like a trained one."""
    normalizer = fit_action_normalizer(synthetic_frames(seed=3).actions)
    policy = OpenVLAPolicy(OpenVLAConfig(base_dir=str(base_dir), lora_rank=4, deploy_task=INSTRUCTION), normalizer)
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * (0.5 if "lora_B" in k else 1.0)
             for k, v in policy.checkpoint_state_dict().items()}
    policy.load_checkpoint_state_dict(state)
    return policy, normalizer


@pytest.fixture
def two_adapters(tiny_base, tmp_path, obs):
    root = tmp_path / "ckpt"
    p1, n1 = trained_like_adapter(tiny_base, 1)
    p2, n2 = trained_like_adapter(tiny_base, 2)
    v1 = save_adapter(p1, n1, SCHEMA, root, 1, step=10)
    v2 = save_adapter(p2, n2, SCHEMA, root, 2, step=20, parent=1)
    a1, a2 = p1.select_action(obs), p2.select_action(obs)
    assert not np.array_equal(a1, a2), "the two adapters must act differently for the swap to be visible"
    return (v1, a1), (v2, a2)


def test_the_checkpoint_holds_the_adapter_only_and_names_its_base(two_adapters, tiny_base):
    (v1, _), _ = two_adapters
    from safetensors.torch import load_file

    weights = load_file(str(v1 / "model.safetensors"))
    assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)
    config = json.loads((v1 / "config.json").read_text())
    manifest = json.loads((v1 / "manifest.json").read_text())
    from robot_stack.policies.openvla.release import base_fingerprint

    assert config["type"] == "openvla" and config["config"]["base_fingerprint"] == base_fingerprint(tiny_base)
    assert manifest["extra"]["base_fingerprint"] == config["config"]["base_fingerprint"]


def test_loading_reproduces_the_adapter_and_reuses_the_cached_base(two_adapters, obs):
    (v1, a1), _ = two_adapters
    loads = BASE_CACHE.loads
    policy, manifest = load_policy(v1, expected_schema=SCHEMA)
    assert manifest.version == 1 and np.array_equal(policy.select_action(obs), a1)
    assert BASE_CACHE.loads == loads


def test_an_adapter_is_refused_when_the_base_present_is_not_its_base(tiny_base, tmp_path, obs):
    import shutil

    base = tmp_path / "models" / "openvla-7b"
    shutil.copytree(tiny_base, base)
    policy, normalizer = trained_like_adapter(base, 1)
    ckpt = save_adapter(policy, normalizer, SCHEMA, tmp_path / "ckpt", 1, step=1)
    assert np.array_equal(load_policy(ckpt)[0].select_action(obs), policy.select_action(obs))
    build_tiny_openvla(base, seed=5)   # the same path now holds another base (same architecture, other weights)
    with pytest.raises(CheckpointError, match=r"no base with fingerprint \w{12}… \(the one this adapter was trained "
                                              r"on\) among .*openvla-7b \(fingerprint \w{12}…\)"):
        load_policy(ckpt)


def test_the_runner_swaps_adapters_between_ticks_and_the_old_one_acts_until_then(two_adapters, obs):
    (v1, a1), (v2, a2) = two_adapters
    gate, entered = threading.Event(), threading.Event()

    def gated_loader(path, **kw):
        if "v0002" in str(path):
            entered.set()
            assert gate.wait(30)
        return load_policy(path, **kw)

    runner = PolicyRunner(SCHEMA, loader=gated_loader)
    try:
        runner.request_load(make_update(v1))
        assert runner.wait_idle(30)
        assert np.array_equal(runner.step(obs), a1) and runner.active_version == 1
        loads = BASE_CACHE.loads
        runner.request_load(make_update(v2))
        assert entered.wait(30)
        for _ in range(3):    # v2 is loading in the background: v1 keeps acting, ticks are not blocked
            assert np.array_equal(runner.step(obs), a1) and runner.active_version == 1
        gate.set()
        assert runner.wait_idle(30)
        assert np.array_equal(runner.step(obs), a2) and runner.active_version == 2
        assert BASE_CACHE.loads == loads, "a swap must not read the base again"
        assert runner.stats.swaps == 2 and runner.stats.rejected == 0
    finally:
        gate.set()
        runner.close()
