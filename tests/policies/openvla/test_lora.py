"""LoRA fine-tuning with the OpenVLA loss: targets, labels, a loss that goes down, the base left untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policies.openvla.finetune import FinetuneConfig, finetune, fit_action_normalizer
from robot_stack.policies.openvla.policy import BASE_CACHE, OpenVLAConfig, OpenVLAPolicy
from robot_stack.policies.openvla.processor import IGNORE_INDEX
from robot_stack_testing.tiny_openvla import INSTRUCTION, synthetic_frames


@pytest.fixture
def frames():
    return synthetic_frames(seed=3)


@pytest.fixture
def lora_policy(tiny_base, frames):
    torch.manual_seed(0)
    return OpenVLAPolicy(OpenVLAConfig(base_dir=str(tiny_base), deploy_task=INSTRUCTION),
                         fit_action_normalizer(frames.actions))


def test_the_recipe_is_rank_32_alpha_16_on_every_linear_layer_that_runs(lora_policy):
    cfg = lora_policy.config
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lr) == (32, 16, 0.0, 5e-4)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in lora_policy.vla.named_parameters() if ".lora_A." in n}
    assert "language_model.lm_head" not in adapted
    for name in ("language_model.model.layers.0.self_attn.q_proj", "language_model.model.layers.1.mlp.down_proj",
                 "projector.fc1", "projector.fc3", "vision_backbone.featurizer.blocks.0.attn.qkv",
                 "vision_backbone.fused_featurizer.blocks.1.mlp.fc2"):
        assert name in adapted
    # Never-run modules (after the second-to-last block; SigLIP's pooling head) get no dead adapters.
    assert not any(".blocks.2." in n or "attn_pool" in n for n in adapted)
    assert all(p.requires_grad == (".lora_" in n) for n, p in lora_policy.vla.named_parameters())


def test_labels_cover_the_seven_action_tokens_and_eos_only(lora_policy, frames):
    batch = lora_policy.make_training_batch(frames.images[:3], frames.actions[:3], list(frames.tasks[:3]))
    tok, at = lora_policy.base.tokenizer, lora_policy.action_tokenizer
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        n = int(mask.sum())
        kept = labels[labels != IGNORE_INDEX].tolist()
        assert kept == ids[n - 8:n].tolist() and kept[-1] == tok.eos_id
        assert all(at.first_action_id <= t < at.vocab_size for t in kept[:7])
        assert ids[n - 9] == tok.empty_piece_id and ids[0] == tok.bos_id
        assert torch.all(ids[n:] == tok.pad_id)
    assert batch["pixel_values"].shape == (3, 6, 224, 224)


def test_lora_steps_lower_the_loss_on_a_fixed_batch_and_leave_the_base_untouched(lora_policy, frames):
    base_before = {k: v.clone() for k, v in BASE_CACHE.get(lora_policy.config.base_dir, lora_policy.base.fingerprint,
                                                           "cpu", torch.float32).state.items()
                   if k.endswith("q_proj.weight")}
    batch = lora_policy.make_training_batch(frames.images[:4], frames.actions[:4], list(frames.tasks[:4]))
    opt = torch.optim.AdamW(lora_policy.trainable_parameters(), lr=lora_policy.config.lr)
    lora_policy.train()
    losses = []
    for _ in range(8):
        loss, logits, targets = lora_policy(batch)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    metrics = lora_policy.training_metrics(loss, logits, targets)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)) and losses[-1] < losses[0] - 0.2, losses
    assert set(metrics) == {"loss", "action_accuracy", "action_l1"} and 0 <= metrics["action_accuracy"] <= 1
    for k, v in base_before.items():
        assert torch.equal(lora_policy.base.state[k], v)


def test_compute_loss_and_the_finetune_loop_log_accuracy_and_l1(lora_policy, frames):
    loss, info = lora_policy.compute_loss(frames.sample(2, np.random.default_rng(0)))
    assert loss.requires_grad and info["loss"] > 0
    reports = []
    result = finetune(lora_policy, frames, FinetuneConfig(steps=3, batch_size=2, log_every_steps=1),
                      on_progress=reports.append)
    assert result.step == 3 and len(result.history) == 3
    assert [r["step"] for r in reports] == [1.0, 2.0, 3.0] and "action_accuracy" in reports[-1]
