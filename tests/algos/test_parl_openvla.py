"""One PA-RL iteration with the tiny OpenVLA as the base policy (robot_stack_testing/tiny_openvla.py): critic updates
on a camera store with N VLA samples per state, an online episode acted through PARLSelector, distillation by
token cross-entropy through the LoRA adapter, and published adapter + critic versions that load and act."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
os.environ["HF_HUB_OFFLINE"] = "1"   # nothing in these tests may reach the network

from robot_stack.algos.parl import PARLLearnerConfig, PARLLearnerService, PARLSelector  # noqa: E402
from robot_stack.policies.checkpoint import PolicySchema, load_critic, load_policy  # noqa: E402
from robot_stack.store import TrajectoryStore  # noqa: E402
from robot_stack.types import ACTION_KEY  # noqa: E402
from robot_stack_testing.tiny_openvla import INSTRUCTION, build_tiny_openvla, write_tiny_store  # noqa: E402

TINY_IMAGE_CRITIC = {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16, "image_size_px": 32,
                     "cameras": ["front"], "use_state": True, "actor_hidden_dims": [16],
                     "critic_hidden_dims": [32, 32], "num_qs": 4, "critic_layer_norm": True}
OPT = {"num_base_actions": 4, "num_keep": 2, "num_steps": 2, "step_size": 0.05}   # OpenVLA's N 8 / keep 4, halved


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vla_base(tmp_path_factory):
    """The tiny release with a fresh rank-4 LoRA adapter, published as a checkpoint (what BC fine-tuning gives)."""
    from robot_stack.policies.openvla.finetune import save_adapter
    from robot_stack.policies.openvla.policy import OpenVLAPolicy

    root = tmp_path_factory.mktemp("parl_vla")
    release = build_tiny_openvla(root / "openvla-7b-tiny", seed=0)
    store = write_tiny_store(root / "schema.zarr", n_episodes=1, n_steps=2)
    with TrajectoryStore.open(store, mode="r") as st:
        schema = PolicySchema.from_store_schema(st.schema)
    policy = OpenVLAPolicy.from_base(release, lora_rank=4, deploy_task=INSTRUCTION)
    return save_adapter(policy, policy.normalizer, schema, root / "base", 1, 0)


def test_one_parl_iteration_with_the_tiny_openvla(vla_base, tmp_path):
    torch.manual_seed(0)
    store_path = write_tiny_store(tmp_path / "store.zarr", n_episodes=2, n_steps=4, task=INSTRUCTION)
    cfg = PARLLearnerConfig.from_dict(dict(
        algo="parl", base_checkpoint=str(vla_base), policy_config=TINY_IMAGE_CRITIC,
        algo_config={"action_opt": OPT, "cql_n_actions": 3}, offline_steps=2, batch_size=4, distill_batch_size=2,
        base_lr=2e-5, mixing_ratio=0.0, sources=["sim"], min_episodes=1, checkpoint_every_steps=1000,
        val_every_episode=0, val_every_steps=0, log_every_steps=1, poll_interval_s=0.05, cache_block_states=4,
        reward={"num_final_reward_steps": 1, "scale": 1.0, "bias": -1.0}))
    updates = []
    svc = PARLLearnerService(store_path, tmp_path / "ckpt", cfg, announce=updates.append)
    start = {k: v.clone() for k, v in svc_base_adapter(vla_base).items()}
    store = svc.open()
    try:
        svc.train_offline()
        # Practice: the live base acts through the PA-RL selector on the recorded frames; the episode is committed
        # as source "policy", as the recorder commits a practice episode.
        actor = svc.make_actor()
        with TrajectoryStore.open(store_path, mode="r") as reader:
            ep = reader.get_episode(0)
        actions, infos = [], []
        for t in range(len(ep[ACTION_KEY])):
            a, info = actor.selector.select(svc.base_policy, {k: v[t] for k, v in ep.items()
                                                              if k.startswith("observation.")})
            actions.append(a)
            infos.append(info)
        online = {**ep, ACTION_KEY: np.stack(actions).astype(np.float32)}
        with TrajectoryStore.open(store_path, mode="a") as writer:
            writer.append_episode(online, {"task": INSTRUCTION, "source": "policy", "success": False})
        taken = svc.online_round(store, save=True)
    finally:
        svc.close()
    n = len(actions)
    assert taken == n and len(svc.distill_history) == n and svc.step == 2 + n
    assert all(0 <= i["index"] < OPT["num_base_actions"] and i["k"] == OPT["num_keep"] for i in infos)
    for m in svc.metrics_history + svc.distill_history:
        assert all(math.isfinite(v) for v in m.values()), m
    assert {"distill/action_accuracy", "distill/loss", "distill/value_gain"} <= set(svc.distill_history[-1])

    base_updates = [u for u in updates if u.policy_type == "openvla"]
    assert [u.version for u in base_updates] == [1]
    policy, manifest = load_policy(tmp_path / "ckpt")
    critic, _ = load_critic(tmp_path / "ckpt" / "critic")
    assert manifest.extra["algo"] == "parl" and manifest.extra["base_fingerprint"]
    after = policy.checkpoint_state_dict()
    assert after.keys() == start.keys() and all(".lora_" in k for k in after)
    assert any(not torch.equal(after[k].float(), start[k].float()) for k in after)   # distillation moved LoRA
    obs = {k: v[0] for k, v in ep.items() if k.startswith("observation.")}
    action, info = PARLSelector(critic, OPT, seed=0).select(policy, obs)
    assert action.shape == (7,) and np.all(np.isfinite(action)) and info["n"] == OPT["num_base_actions"]


def svc_base_adapter(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))
