"""`openvla`: the released OpenVLA-7B (or a LoRA adapter on it) behind the project's Policy interface.

    obs {observation.images.<camera>: uint8 (H, W, 3), "task": str (optional)}   instruction: obs["task"],
        │                                                                         else config.deploy_task
        ├─► ImagePreprocessor ─► (1, 6, 224, 224)        PromptTokenizer ─► (1, L) ids
        ▼
    decode_actions: one prefill, K × 7 action tokens as one batch on the shared KV cache
        ▼
    ActionTokenizer.decode ─► normalised (K, 7) ─► Normalizer (q01/q99, gripper passthrough) ─► physical
        ─► gripper > 0.5 → 1.0 (open) else 0.0: a binary decision (DESIGN.md §3) ─► float32 (K, 7)

Weights: the base (a release directory, `base_dir`) is read ONCE per process and device into `BASE_CACHE`,
keyed by its fingerprint (release.base_fingerprint); each policy object is its own module tree whose base
parameters are the cached tensors (shared, never copied, never written: LoRA is never merged into them) plus
its own LoRA adapter (peft, rank 32, alpha min(rank, 16), dropout 0, every linear layer that runs except
lm_head; vla-scripts/finetune.py). Two adapters can therefore be alive at once (the runner's active and staged
versions) at the cost of their adapters only, and the loader thread builds the new one while the old one acts.

Checkpoint (robot_stack/policies/checkpoint.py hooks): model.safetensors holds the ADAPTER only
(`checkpoint_state_dict`); config.json names the base by `base_fingerprint`; loading
(`build_on_device`) refuses a base whose fingerprint differs. The base is found at config.base_dir or in one
of the directories listed in $ROBOT_STACK_OPENVLA_BASES (os.pathsep-separated: the same base at another path on
the inference machine).

Precision: bf16 on CUDA, fp32 on CPU (config.dtype "auto"); attention is SDPA in both the ViTs and Llama.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_stack.policies.base import POLICIES, Policy, PolicyConfig
from robot_stack.policies.checkpoint import CheckpointError
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, GRIPPER_INDEX, image_key

log = logging.getLogger(__name__)

BASES_ENV = "ROBOT_STACK_OPENVLA_BASES"
TASK_KEY = "task"   # optional language instruction in an observation / batch (the store sampler's name)


@dataclass
class OpenVLAConfig(PolicyConfig):
    cameras: tuple[str, ...] = ("front",)     # OpenVLA-7B sees one third-person image
    base_dir: str = ""                        # the released openvla/openvla-7b directory (or one in its layout)
    base_fingerprint: str = ""                # filled when the adapter is created; "" = accept any base
    unnorm_key: str | None = None             # dataset statistics of the base; required if it has several
    deploy_task: str | None = None            # instruction when the observation has no "task" (runner sets it)
    dtype: str = "auto"                       # auto: bfloat16 on CUDA, float32 on CPU
    # Decoding (sample_actions; select_action is always greedy).
    temperature: float = 1.0
    top_p: float = 0.9
    restrict_to_action_tokens: bool = True    # argmax / sample among the 256 action ids only
    binarize_gripper: bool = True             # gripper > 0.5 -> 1 (open) else 0
    # LoRA fine-tuning (vla-scripts/finetune.py defaults); lora_rank 0 = no adapter (base or full fine-tune).
    lora_rank: int = 32
    lora_dropout: float = 0.0
    lr: float = 5e-4                          # constant, no schedule
    weight_decay: float = 0.01                # torch AdamW's default, which finetune.py leaves in place
    train_crop_scale: float = 0.9             # image_aug: random crop of this fraction of the AREA (1 = off)
    train_color_jitter: bool = True           # image_aug: brightness/contrast/saturation/hue (augment.py)
    center_crop_scale: float = 1.0            # acting: center crop of this AREA fraction (LIBERO 0.9; Bridge 1)

    @property
    def lora_alpha(self) -> int:
        return min(self.lora_rank, 16)


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"OpenVLAConfig.dtype {name!r}; use auto, float32, bfloat16 or float16")
    return getattr(torch, name)


# ---- base cache -----------------------------------------------------------------------------------
@dataclass
class LoadedBase:
    """A release read once: its weights on one device/dtype and what the policy needs around them."""

    fingerprint: str
    release: Any                       # release.OpenVLARelease
    state: dict[str, torch.Tensor]     # every base weight, shared by all policy objects built on it
    tokenizer: Any                     # processor.PromptTokenizer
    images: Any                        # processor.ImagePreprocessor
    actions: Any                       # processor.ActionTokenizer


class BaseCache:
    """fingerprint/device/dtype -> LoadedBase. Thread-safe (the runner's loader thread builds policies)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bases: dict[tuple[str, str, str], LoadedBase] = {}
        self.loads = 0                  # base reads from disk (tests check that swaps do not re-read the base)

    def get(self, base_dir: str | Path, fingerprint: str, device: str, dtype: torch.dtype) -> LoadedBase:
        from robot_stack.policies.openvla.modeling import load_release_state
        from robot_stack.policies.openvla.processor import ActionTokenizer, ImagePreprocessor, PromptTokenizer
        from robot_stack.policies.openvla.release import read_release

        key = (fingerprint, str(torch.device(device)), str(dtype))
        with self._lock:  # one loader at a time: two threads must not read a 15 GB base twice
            if key in self._bases:
                return self._bases[key]
            release = read_release(base_dir)
            arch = release.architecture
            state = load_release_state(release, device, dtype)
            base = LoadedBase(fingerprint, release, state,
                              PromptTokenizer(release.base_dir, arch.pad_token_id, arch.action_vocab_size),
                              ImagePreprocessor(release.preprocessor),
                              ActionTokenizer(arch.action_vocab_size, arch.n_action_bins))
            self._bases[key] = base
            self.loads += 1
            log.info("loaded OpenVLA base %s (%s) on %s as %s", base_dir, fingerprint[:12], device, dtype)
            return base

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()


BASE_CACHE = BaseCache()


def find_base(config: OpenVLAConfig) -> tuple[Path, str]:
    """(directory, fingerprint) of the base: config.base_dir, else a $ROBOT_STACK_OPENVLA_BASES entry, whose
    fingerprint equals config.base_fingerprint (any, when that is empty)."""
    from robot_stack.policies.openvla.release import base_fingerprint

    candidates = [c for c in [config.base_dir, *os.environ.get(BASES_ENV, "").split(os.pathsep)] if c]
    if not candidates:
        raise CheckpointError("OpenVLAConfig.base_dir is empty; set it to the openvla/openvla-7b directory")
    seen = []
    for cand in candidates:
        if not Path(cand).is_dir():
            seen.append(f"{cand} (absent)")
            continue
        fp = base_fingerprint(cand)
        if not config.base_fingerprint or fp == config.base_fingerprint:
            return Path(cand), fp
        seen.append(f"{cand} (fingerprint {fp[:12]}…)")
    if config.base_fingerprint:
        raise CheckpointError(
            f"no base with fingerprint {config.base_fingerprint[:12]}… (the one this adapter was trained on) among "
            f"{seen}; copy that base and point base_dir or ${BASES_ENV} at it — an adapter on another base acts "
            "arbitrarily")
    raise CheckpointError(f"OpenVLA base directory not found: {seen}; set base_dir or ${BASES_ENV}")


def normalizer_from_statistics(action_stats: dict[str, Any]) -> Normalizer:
    """The project's Normalizer from OpenVLA action statistics: q01/q99 where mask is True, passthrough where
    False (the gripper); modeling_prismatic.py: a = 0.5 (a_n + 1)(q99 - q01) + q01 where mask."""
    q01 = np.asarray(action_stats["q01"], np.float64)
    mask = np.asarray(action_stats.get("mask", [True] * len(q01)), bool)
    return Normalizer(action_q01=q01, action_q99=np.asarray(action_stats["q99"], np.float64),
                      state_mean=np.zeros(0), state_std=np.zeros(0),
                      passthrough_dims=tuple(int(i) for i in np.flatnonzero(~mask)), mode="quantile")


def lora_target_modules(model: torch.nn.Module) -> list[str]:
    """peft "all-linear" as finetune.py gets it on the HF model (every nn.Linear but the output layer lm_head),
    minus the linear layers OpenVLA never runs (ViT blocks after the feature block, SigLIP's attn_pool): their
    adapters could never change an output and would need DDP's find_unused_parameters."""
    from robot_stack.policies.openvla.modeling import OpenVLAModel

    assert isinstance(model, OpenVLAModel)
    unused = []
    for vit_name in ("featurizer", "fused_featurizer"):
        vit = getattr(model.vision_backbone, vit_name)
        if vit is None:
            continue
        prefix = f"vision_backbone.{vit_name}."
        unused += [f"{prefix}blocks.{i}." for i in range(vit.feature_block_index + 1, len(vit.blocks))]
        unused.append(f"{prefix}attn_pool.")
    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name != "language_model.lm_head"
            and not any(name.startswith(u) for u in unused)]


# ---- the policy -----------------------------------------------------------------------------------
@POLICIES.register("openvla")
class OpenVLAPolicy(Policy):
    name = "openvla"
    config_class = OpenVLAConfig

    def __init__(self, config: OpenVLAConfig, normalizer: Normalizer, device: str | torch.device = "cpu"):
        super().__init__(config, normalizer)
        from peft import LoraConfig, inject_adapter_in_model

        from robot_stack.policies.openvla.modeling import model_from_state

        if normalizer.action_dim != GRIPPER_INDEX + 1:
            raise ValueError(f"openvla emits 7-D ee_delta actions; the normalizer has {normalizer.action_dim} dims")
        if len(config.cameras) != 1:
            raise ValueError(f"OpenVLA-7B sees exactly one camera; cameras={config.cameras}: keep the third-person one")
        device = torch.device(device)
        base_dir, fingerprint = find_base(config)
        config.base_fingerprint = fingerprint     # an adapter made from this policy names this base
        self.dtype = resolve_dtype(config.dtype, device)
        self.base = BASE_CACHE.get(base_dir, fingerprint, str(device), self.dtype)
        vla = model_from_state(self.base.release.architecture, self.base.state, device, self.dtype)
        if config.lora_rank > 0:
            lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=lora_target_modules(vla), init_lora_weights="gaussian")
            vla = inject_adapter_in_model(lora, vla, adapter_name="default")
            for n, p in vla.named_parameters():   # adapters in fp32 even on a bf16 base (stable AdamW updates)
                if "lora_" in n:
                    p.data = p.data.float()
        self.vla = vla
        self.to(device)   # normaliser buffers; the base tensors are on `device` already
        if self.action_tokenizer.n_bins != 256:
            log.warning("base uses %d action bins (OpenVLA-7B: 256)", self.action_tokenizer.n_bins)

    @classmethod
    def build_on_device(cls, config: OpenVLAConfig | dict, normalizer: Normalizer, device: str) -> OpenVLAPolicy:
        """Checkpoint hook (checkpoint.load_policy): build straight on `device` (a 7B base never goes through
        CPU fp32), through the base cache."""
        cfg = cls.config_class.from_dict(config) if isinstance(config, dict) else config
        return cls(cfg, normalizer, device=device)

    @classmethod
    def from_base(cls, base_dir: str | Path, unnorm_key: str | None = None, device: str = "cpu",
                  **config: Any) -> OpenVLAPolicy:
        """The release as a policy (its own action statistics), optionally with a fresh LoRA adapter."""
        from robot_stack.policies.openvla.release import action_statistics, read_release

        release = read_release(base_dir)
        stats = action_statistics(release.norm_stats, unnorm_key)
        cfg = OpenVLAConfig(base_dir=str(base_dir), unnorm_key=unnorm_key, **{"lora_rank": 0, **config})
        return cls(cfg, normalizer_from_statistics(stats), device=device)

    # ---- checkpoint hooks (robot_stack/policies/checkpoint.py) ------------------------------------
    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter only (peft names without the adapter name); the whole model when lora_rank is 0."""
        if self.config.lora_rank <= 0:
            return dict(self.vla.state_dict())
        from peft import get_peft_model_state_dict

        return dict(get_peft_model_state_dict(self.vla, adapter_name="default"))

    def load_checkpoint_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = self.checkpoint_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        bad_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or bad_shape:
            raise RuntimeError(f"adapter keys do not fit lora_rank={self.config.lora_rank} on this base: missing "
                               f"{missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]}")
        if self.config.lora_rank <= 0:
            self.vla.load_state_dict(state, strict=True)
            return
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.vla, state, adapter_name="default")

    # ---- properties -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.vla.language_model.lm_head.weight.device

    @property
    def action_tokenizer(self):
        return self.base.actions

    def observation_keys(self) -> list[str]:
        return [image_key(self.config.cameras[0])]

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.vla.parameters() if p.requires_grad]

    # ---- acting -----------------------------------------------------------------------------------
    def _instruction(self, obs: dict[str, Any]) -> str:
        task = obs.get(TASK_KEY)
        instruction = task if isinstance(task, str) and task else self.config.deploy_task
        if not instruction:
            raise ValueError("OpenVLA needs a language instruction: put it in obs['task'] or set "
                             "OpenVLAConfig.deploy_task (the runner's set_episode_mode(language=...) does)")
        return instruction

    def _inputs(self, obs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.observation_keys()[0]
        if key not in obs:
            raise KeyError(f"observation lacks {key!r}; this OpenVLA policy reads camera {self.config.cameras[0]!r}")
        from robot_stack.policies.openvla.augment import center_crop_fraction

        crop = center_crop_fraction(self.config.center_crop_scale)
        pixels = self.base.images(obs[key], crop).unsqueeze(0).to(self.device, self.dtype)
        ids = torch.tensor([self.base.tokenizer.prompt_ids(self._instruction(obs))], device=self.device)
        return pixels, ids

    def _to_physical(self, normalized: np.ndarray) -> np.ndarray:
        """(K, 7) bin centres -> (K, 7) float32 physical actions, gripper binary when configured."""
        action = self.normalizer.unnormalize_action(normalized)
        if self.config.binarize_gripper:
            action[:, GRIPPER_INDEX] = (action[:, GRIPPER_INDEX] > 0.5).astype(np.float64)
        return action.astype(np.float32)

    @torch.no_grad()
    def sample_token_ids(self, obs: dict[str, Any], k: int, temperature: float, top_p: float,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """(K, 7) action token ids: one prefill, K sequences decoded as one batch (modeling.decode_actions)."""
        from robot_stack.policies.openvla.modeling import decode_actions

        pixels, ids = self._inputs(obs)
        was_training = self.training
        self.eval()
        try:
            return decode_actions(self.vla, pixels, ids, self.normalizer.action_dim, k, self.action_tokenizer,
                                  temperature=temperature, top_p=top_p,
                                  restrict_to_actions=self.config.restrict_to_action_tokens,
                                  generator=generator).token_ids
        finally:
            self.train(was_training)

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """Greedy action, float32 (7,) physical."""
        ids = self.sample_token_ids(obs, 1, temperature=0.0, top_p=1.0)
        return self._to_physical(self.action_tokenizer.decode(ids))[0]

    def sample_actions(self, obs: dict[str, Any], k: int, temperature: float | None = None,
                       top_p: float | None = None, generator: torch.Generator | None = None) -> np.ndarray:
        """K sampled actions, float32 (K, 7) physical; temperature 0 is greedy (K copies of select_action)."""
        t = self.config.temperature if temperature is None else float(temperature)
        p = self.config.top_p if top_p is None else float(top_p)
        ids = self.sample_token_ids(obs, int(k), temperature=t, top_p=p, generator=generator)
        return self._to_physical(self.action_tokenizer.decode(ids))

    # ---- learning ---------------------------------------------------------------------------------
    def make_training_batch(self, images: np.ndarray, actions: np.ndarray, tasks: list[str],
                            rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """images uint8 (B, H, W, 3), physical actions (B, 7), tasks (B) -> model inputs on self.device:
        pixel_values (B, 6, S, S), input_ids/attention_mask/labels (B, L) right-padded with <PAD>.
        Sequence: <s> prompt "▁" a_1..a_7 </s>; labels keep the last 8 (finetune.py's RLDSBatchTransform)."""
        normalized = np.clip(self.normalizer.normalize_action(np.asarray(actions, np.float64)), -1.0, 1.0)
        action_ids = self.action_tokenizer.encode(normalized)
        tok = self.base.tokenizer
        seqs, labels = [], []
        for task, ids in zip(tasks, action_ids, strict=True):
            prompt = tok.prompt_ids(task)
            seqs.append([*prompt, *ids.tolist(), tok.eos_id])
            labels.append([-100] * len(prompt) + [*ids.tolist(), tok.eos_id])
        length = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), length), tok.pad_id, dtype=torch.long)
        label_t = torch.full((len(seqs), length), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for i, (s, lab) in enumerate(zip(seqs, labels, strict=True)):
            input_ids[i, : len(s)], label_t[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(lab), 1
        from robot_stack.policies.openvla.augment import ColorJitter, random_crop_fraction

        pixels = []
        for img in np.asarray(images):
            # rng given = training with image_aug (augment.py): per image one crop draw, then one colour draw.
            crop = random_crop_fraction(rng, self.config.train_crop_scale) if rng is not None else None
            jitter = ColorJitter.sample(rng) if rng is not None and self.config.train_color_jitter else None
            pixels.append(self.base.images(img, crop, jitter))
        dev = self.device
        return {"pixel_values": torch.stack(pixels).to(dev, self.dtype), "input_ids": input_ids.to(dev),
                "attention_mask": mask.to(dev), "labels": label_t.to(dev)}

    def forward(self, model_batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs (make_training_batch) -> (loss, logits (M, V), targets (M,)); DDP wraps this call."""
        return self.vla.action_loss(**model_batch)

    def training_metrics(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """finetune.py's logged metrics: action-token accuracy (argmax over the full vocabulary at action
        positions) and L1 between the decoded predicted and target bins (normalised units)."""
        with torch.no_grad():
            is_action = targets > self.action_tokenizer.action_token_begin_idx
            pred = logits.argmax(dim=-1)
            accuracy = ((pred == targets) & is_action).sum().float() / is_action.sum().clamp(min=1)
            dec = self.action_tokenizer.decode_torch
            l1 = (dec(pred[is_action]) - dec(targets[is_action])).abs().mean() if is_action.any() else loss * 0
        return {"loss": float(loss.detach()), "action_accuracy": float(accuracy), "action_l1": float(l1)}

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Batch {observation.images.<cam>: (B, H, W, 3) uint8, action: (B, 7) physical, task: list[str] (B)
        (absent: deploy_task)} -> (OpenVLA loss, {loss, action_accuracy, action_l1})."""
        images = batch[self.observation_keys()[0]]
        images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        actions = batch[ACTION_KEY]
        actions = actions.cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        tasks = batch.get(TASK_KEY) or [self._instruction({})] * len(actions)
        loss, logits, targets = self(self.make_training_batch(images, actions, list(tasks)))
        return loss, self.training_metrics(loss, logits, targets)
