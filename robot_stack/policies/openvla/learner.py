"""`learner=openvla_lora`: OpenVLA LoRA fine-tuning as a learner service, run like every other learner.

    robot-stack learn learner=openvla_lora store=... checkpoints=... learner.base_dir=/models/openvla-7b
    (or the learner node: python -m robot_stack.ros.learner_node learner=openvla_lora ...)

    store (read-only, tailed) ─refresh()─► eligible episodes (sources, success_only, task) ≥ min_episodes?
        ─► EpisodeFrames (the recipe's camera, every frame's language) ─► action Normalizer
        ─► OpenVLAPolicy (base read once, LoRA r32/α16) ─► finetune(): steps_per_version AdamW steps (lr 5e-4
           constant, image_aug) ─► save_adapter(v n, parent n-1; adapter only, base named by fingerprint, atomic)
        ─► announce(PolicyUpdate) ─► repeat until max_versions / stop()

The service is robot_stack/learn/bc.py's LearnerService with OpenVLA's pieces: the same BackgroundService thread
control, store waiting and announcing, the same checkpoint layout and version numbering, restart-safe the same way
(resumes the adapter, step and version of the latest checkpoint; the AdamW moments start fresh). Registered as
learner service `openvla` in robot_stack/learn/services.py.

Action statistics: with `unnorm_key` unset, q01/q99 of the store's actions (finetune.py computes a new dataset's
statistics the same way), refitted before each version as the store grows; with `unnorm_key` set (e.g.
`bridge_orig` for a WidowX rig like Bridge's), the base's own statistics for that dataset, fixed: the adapter then
starts from the base's action mapping instead of a new one fitted to a few episodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robot_stack.learn.background import BackgroundService

log = logging.getLogger(__name__)


@dataclass
class OpenVLALearnerConfig:
    """Fields of robot_stack/conf/learner/openvla_lora.yaml (unknown keys are refused by `from_dict`)."""

    algo: str = "openvla"
    base_dir: str = ""                       # the released openvla/openvla-7b directory
    unnorm_key: str | None = None            # None: fit q01/q99 on the store; set: the base's statistics
    camera: str = "front"                    # OpenVLA-7B sees one third-person image
    sources: tuple[str, ...] = ("sim", "teleop")
    success_only: bool = True
    task: str | None = None                  # episode language filter; None = every task (language-conditioned)
    min_episodes: int = 5
    steps_per_version: int = 500
    max_versions: int = 2                    # new versions this run writes; 0 = until stop()
    batch_size: int = 16                     # finetune.py: 16 per GPU
    lora_rank: int = 32
    lora_alpha: int = 16                     # the policy uses min(rank, 16) (finetune.py); checked, not free
    lora_dropout: float = 0.0
    lr: float = 5e-4                         # constant AdamW, no schedule (finetune.py)
    weight_decay: float = 0.01               # torch AdamW's default, which finetune.py keeps
    image_aug: bool = True                   # 90 %-area random crop + colour jitter (augment.py)
    gradient_checkpointing: bool = False     # the 7B model on a < 80 GB GPU at batch 16
    dtype: str = "auto"                      # bf16 on CUDA, fp32 on CPU
    poll_interval_s: float = 2.0
    device: str = "cpu"
    seed: int = 0
    log_every_steps: int = 10

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenVLALearnerConfig:
        from robot_stack.policies.base import dataclass_from_dict

        cfg = dataclass_from_dict(cls, d)
        if cfg.algo != "openvla":
            raise ValueError(f"OpenVLALearnerConfig.algo {cfg.algo!r}: this learner trains 'openvla'")
        if cfg.lora_rank < 1:
            raise ValueError(f"lora_rank {cfg.lora_rank}: the learner trains LoRA adapters (rank >= 1); a full "
                             "fine-tune runs under torchrun: python -m robot_stack.policies.openvla.finetune")
        if cfg.lora_alpha != min(cfg.lora_rank, 16):
            raise ValueError(f"lora_alpha {cfg.lora_alpha} with lora_rank {cfg.lora_rank}: OpenVLA's recipe uses "
                             f"alpha = min(rank, 16) = {min(cfg.lora_rank, 16)}; set lora_alpha to that")
        return cfg

    def policy_config(self, deploy_task: str | None):
        from robot_stack.policies.openvla.policy import OpenVLAConfig

        return OpenVLAConfig(cameras=(self.camera,), base_dir=self.base_dir, unnorm_key=self.unnorm_key,
                             deploy_task=deploy_task, dtype=self.dtype, lora_rank=self.lora_rank,
                             lora_dropout=self.lora_dropout, lr=self.lr, weight_decay=self.weight_decay,
                             train_crop_scale=0.9 if self.image_aug else 1.0, train_color_jitter=self.image_aug)


class OpenVLALearnerService(BackgroundService):
    """Tails a store and writes a new adapter checkpoint version every `steps_per_version` steps."""

    def __init__(self, store_path: str | Path, checkpoint_dir: str | Path, cfg: OpenVLALearnerConfig,
                 announce: Callable | None = None, on_progress: Callable[[dict[str, float]], None] | None = None):
        self.store_path, self.checkpoint_dir, self.cfg = Path(store_path), Path(checkpoint_dir), cfg
        self.announce, self.on_progress = announce, on_progress
        self.updates: list = []
        super().__init__()

    def run(self) -> list:
        """Block until cfg.max_versions new versions are written or stop(); returns the announced updates."""
        from robot_stack.inference.manifest import make_update
        from robot_stack.policies.checkpoint import PolicySchema, list_versions
        from robot_stack.policies.openvla.finetune import FinetuneConfig, finetune
        from robot_stack.policies.openvla.policy import OpenVLAPolicy

        torch.manual_seed(self.cfg.seed)
        policy, step, version = self._resume()
        store = self._open_store()
        if store is None:
            return self.updates
        try:
            optimizer = None if policy is None else self._optimizer(policy)
            written = 0
            while not self._stop.is_set() and (self.cfg.max_versions <= 0 or written < self.cfg.max_versions):
                frames, n_episodes = self._wait_for_frames(store)
                if frames is None:
                    break
                normalizer = self._normalizer(frames)
                if policy is None:
                    config = self.cfg.policy_config(self.cfg.task or str(frames.tasks[0]))
                    policy = OpenVLAPolicy(config, normalizer, device=self.cfg.device)
                    if self.cfg.gradient_checkpointing:
                        policy.vla.enable_gradient_checkpointing()
                    optimizer = self._optimizer(policy)
                else:
                    policy.set_normalizer(normalizer)
                log.info("training v%d: %d steps on %d episodes (%d frames)", version + 1,
                         self.cfg.steps_per_version, n_episodes, len(frames))
                result = finetune(policy, frames, FinetuneConfig(steps=self.cfg.steps_per_version,
                                                                 batch_size=self.cfg.batch_size, seed=self.cfg.seed,
                                                                 log_every_steps=self.cfg.log_every_steps),
                                  optimizer=optimizer, on_progress=self.on_progress, start_step=step,
                                  should_stop=self._stop.is_set)
                if result.step - step < self.cfg.steps_per_version:
                    break  # stopped mid-version: a partly trained version is not published
                step = result.step
                parent = version or None
                version = max([version, *list_versions(self.checkpoint_dir)]) + 1
                path = self._save(policy, normalizer, PolicySchema.from_store_schema(store.schema), version, step,
                                  parent, {"episodes": n_episodes, "frames": len(frames)})
                self._announce(make_update(path))
                written += 1
        finally:
            store.close()
        return self.updates

    # ---- helpers ----------------------------------------------------------------------------------
    def _optimizer(self, policy) -> torch.optim.Optimizer:
        return torch.optim.AdamW(policy.trainable_parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _save(self, policy, normalizer, schema, version: int, step: int, parent: int | None, extra: dict):
        from robot_stack.policies.openvla.finetune import save_adapter

        return save_adapter(policy, normalizer, schema, self.checkpoint_dir, version, step, parent=parent, extra=extra)

    def _normalizer(self, frames):
        from robot_stack.policies.openvla.finetune import fit_action_normalizer
        from robot_stack.policies.openvla.policy import normalizer_from_statistics
        from robot_stack.policies.openvla.release import action_statistics, read_release

        if self.cfg.unnorm_key is None:
            return fit_action_normalizer(frames.actions)
        return normalizer_from_statistics(action_statistics(read_release(self.cfg.base_dir).norm_stats,
                                                            self.cfg.unnorm_key))

    def _resume(self):
        """(policy, step, version) from the latest checkpoint, or (None, 0, 0) on a fresh start."""
        from robot_stack.inference.manifest import make_update
        from robot_stack.policies.checkpoint import latest_checkpoint, load_policy

        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            return None, 0, 0
        policy, manifest = load_policy(latest, device=self.cfg.device)
        if manifest.policy_type != "openvla":
            raise ValueError(f"{latest} holds a {manifest.policy_type!r} policy, not 'openvla'; use another "
                             "checkpoints= directory for the OpenVLA learner")
        if policy.config.lora_rank != self.cfg.lora_rank:
            raise ValueError(f"{latest} holds a rank-{policy.config.lora_rank} adapter but learner.lora_rank is "
                             f"{self.cfg.lora_rank}; use another checkpoints= directory or the same rank")
        if self.cfg.gradient_checkpointing:
            policy.vla.enable_gradient_checkpointing()
        log.info("resuming from %s (step %d)", latest, manifest.step)
        self._announce(make_update(latest))
        return policy, manifest.step, manifest.version

    def _wait_for_frames(self, store):
        """(EpisodeFrames of every eligible episode, #episodes) once ≥ min_episodes; (None, 0) if stopped."""
        from robot_stack.learn.dataset import eligible_episodes
        from robot_stack.policies.openvla.finetune import EpisodeFrames

        waited = False
        while True:
            store.refresh()
            episodes = eligible_episodes(store, self.cfg.sources, self.cfg.success_only, self.cfg.task)
            if len(episodes) >= self.cfg.min_episodes:
                if getattr(self, "_loaded_episodes", None) != episodes:   # reread only when the store grew
                    self._frames = EpisodeFrames.from_store(store, episodes, self.cfg.camera)
                    self._loaded_episodes = episodes
                return self._frames, len(episodes)
            if not waited:
                log.info("waiting for %d eligible episodes (have %d; sources %s, success_only %s)",
                         self.cfg.min_episodes, len(episodes), self.cfg.sources, self.cfg.success_only)
                waited = True
            if self._stop.wait(self.cfg.poll_interval_s):
                return None, 0
