"""Behaviour cloning: `train_bc` (one-shot) and `LearnerService` (tails a store, writes versioned checkpoints).

    store (read-only) ─refresh()─► eligible episodes (sources, success_only, task) ≥ min_episodes?
        ─► FrameDataset (+ newly committed episodes) ─► refit Normalizer ─► steps_per_version Adam steps
        ─► save_checkpoint(v n, parent n-1) ─► announce(PolicyUpdate) ─► repeat until max_versions / stop()

ROS-free: the learner node is an adapter that publishes `announce`d updates on policy_update.
Any registered policy can be trained: the loop only calls `Policy.compute_loss`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_stack.inference.manifest import PolicyUpdate, make_update
from robot_stack.learn.background import BackgroundService
from robot_stack.learn.dataset import FrameDataset, eligible_episodes
from robot_stack.policies.base import Policy, PolicyConfig, dataclass_from_dict, make_policy, policy_class
from robot_stack.policies.checkpoint import (
    PolicySchema,
    latest_checkpoint,
    list_versions,
    load_policy,
    save_checkpoint,
)
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, image_key

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, float]], None]


@dataclass
class LearnerConfig:
    """Fields of `robot_stack/conf/learner/*.yaml` (unknown keys are refused by `from_dict`)."""

    algo: str = "bc"
    sources: tuple[str, ...] = ("sim", "teleop")   # episode sources to train on (store metadata `source`)
    success_only: bool = True
    task: str | None = None                         # episode `task` (language) filter; None = every task
    min_episodes: int = 5                           # eligible committed episodes needed before v1
    steps_per_version: int = 600
    max_versions: int = 2                           # new versions this run writes; 0 = until stop()
    batch_size: int = 64
    poll_interval_s: float = 2.0
    device: str = "cpu"
    seed: int = 0
    log_every_steps: int = 50
    tensorboard_dir: str | None = None              # SummaryWriter scalars (loss, steps/s) when set

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearnerConfig:
        cfg = dataclass_from_dict(cls, d)
        if cfg.algo != "bc":
            raise ValueError(f"LearnerConfig.algo {cfg.algo!r}: this learner trains 'bc'; pick learner=bc "
                             "or run the learner of that algorithm")
        return cfg


@dataclass
class TrainResult:
    policy: Policy
    normalizer: Normalizer
    schema: PolicySchema
    step: int                                  # total optimiser steps the policy has taken
    losses: list[float] = field(default_factory=list)   # per-step loss of this call


def dataset_keys(config: PolicyConfig) -> list[str]:
    """The store keys BC needs for a policy config: its cameras' images, state, [environment state], action."""
    env = [ENV_STATE_KEY] if getattr(config, "use_environment_state", False) else []
    return [image_key(c) for c in config.cameras] + [STATE_KEY, *env, ACTION_KEY]


def fit_normalizer(dataset: FrameDataset) -> Normalizer:
    arrays = dataset.arrays
    return Normalizer.fit(arrays[ACTION_KEY], arrays[STATE_KEY], env_states=arrays.get(ENV_STATE_KEY))


class _ProgressLog:
    """Logs/reports mean loss and steps/s every `every` steps; scalars to tensorboard when a writer is set."""

    def __init__(self, every: int, on_progress: ProgressFn | None, writer: Any | None):
        self.every, self.on_progress, self.writer = max(1, every), on_progress, writer
        self._sum: dict[str, float] = {}
        self._n = 0
        self._t = time.monotonic()

    def add(self, step: int, info: dict[str, float], force: bool = False) -> None:
        for k, v in info.items():
            self._sum[k] = self._sum.get(k, 0.0) + v
        self._n += 1
        if not (force or step % self.every == 0):
            return
        now = time.monotonic()
        report = {k: v / self._n for k, v in self._sum.items()}
        report["steps_per_s"] = self._n / max(now - self._t, 1e-9)
        report["step"] = float(step)
        log.info("step %d  loss %.4f  %.1f steps/s", step, report.get("loss", float("nan")), report["steps_per_s"])
        if self.writer is not None:
            for k, v in report.items():
                if k != "step":
                    self.writer.add_scalar(f"train/{k}", v, step)
        if self.on_progress is not None:
            self.on_progress(report)
        self._sum, self._n, self._t = {}, 0, now


def train_steps(policy: Policy, optimizer: torch.optim.Optimizer, dataset: FrameDataset, steps: int,
                batch_size: int, rng: np.random.Generator, start_step: int = 0,
                progress: _ProgressLog | None = None, should_stop: Callable[[], bool] | None = None
                ) -> tuple[int, list[float]]:
    """Up to `steps` Adam steps on uniformly sampled frames; returns (global step reached, per-step losses).

    Optional policy hooks: `data_window()` -> (observation offsets, action offsets) makes the batches temporal
    windows (action-chunk policies: observation history (B, T_o, ...), action chunk (B, T_p, A));
    `after_optimizer_step()` runs after every step (an EMA of the weights)."""
    policy.train()
    losses: list[float] = []
    step = start_step
    window = policy.data_window() if hasattr(policy, "data_window") else None
    after_step = getattr(policy, "after_optimizer_step", None)
    for i in range(steps):
        if should_stop is not None and should_stop():
            log.info("training stopped at step %d", step)
            break
        batch = dataset.sample(batch_size, rng, policy.device) if window is None else \
            dataset.sample_window(batch_size, rng, policy.device, *window)
        loss, info = policy.compute_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        step += 1
        losses.append(info["loss"])
        if progress is not None:
            progress.add(step, info, force=(i == steps - 1))
    policy.eval()
    return step, losses


def make_optimizer(policy: Policy) -> torch.optim.Optimizer:
    cfg = policy.config
    return torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=getattr(cfg, "lr", 3e-4),
                             weight_decay=getattr(cfg, "weight_decay", 0.0))


def train_bc(store: Any, cfg: LearnerConfig, steps: int, on_progress: ProgressFn | None = None, *,
             policy_type: str = "bc_conv", policy_config: PolicyConfig | dict[str, Any] | None = None,
             should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train a fresh policy for `steps` steps on the store's eligible episodes (cfg.sources/success_only/task).

    on_progress receives {"step", "loss", "steps_per_s", ...} every cfg.log_every_steps steps.
    """
    torch.manual_seed(cfg.seed)
    config = _policy_config(policy_type, policy_config)
    episodes = eligible_episodes(store, cfg.sources, cfg.success_only, cfg.task)
    if not episodes:
        raise ValueError(f"no eligible episodes in {store!r} (sources {cfg.sources}, success_only "
                         f"{cfg.success_only}, task {cfg.task!r}); record some or widen the filter")
    dataset = FrameDataset.from_store(store, episodes, dataset_keys(config))
    normalizer = fit_normalizer(dataset)
    policy = make_policy(policy_type, config, normalizer).to(cfg.device)
    step, losses = train_steps(policy, make_optimizer(policy), dataset, steps, cfg.batch_size,
                               np.random.default_rng(cfg.seed), progress=_ProgressLog(cfg.log_every_steps,
                                                                                      on_progress, None),
                               should_stop=should_stop)
    return TrainResult(policy, normalizer, PolicySchema.from_store_schema(store.schema), step, losses)


def _policy_config(policy_type: str, policy_config: PolicyConfig | dict[str, Any] | None) -> PolicyConfig:
    cls = policy_class(policy_type).config_class
    if policy_config is None:
        return cls()
    return cls.from_dict(policy_config) if isinstance(policy_config, dict) else policy_config


class LearnerService(BackgroundService):
    """Tails a store and writes a new checkpoint version every `steps_per_version` steps (module docstring).

    Restart-safe: on start it resumes the weights, step count and version numbering of `checkpoint_dir`'s
    latest checkpoint (and re-announces it). Not resumed: the optimiser's moments (a fresh AdamW each run)
    and the normaliser, which is refitted to the current data before every version.
    """

    def __init__(self, store_path: str | Path, checkpoint_dir: str | Path, cfg: LearnerConfig,
                 policy_type: str = "bc_conv", policy_config: PolicyConfig | dict[str, Any] | None = None,
                 announce: Callable[[PolicyUpdate], None] | None = None, on_progress: ProgressFn | None = None):
        self.store_path = Path(store_path)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.cfg = cfg
        self.policy_type = policy_type
        self.policy_config = _policy_config(policy_type, policy_config)
        self.announce = announce
        self.on_progress = on_progress
        self.updates: list[PolicyUpdate] = []     # every update announced by this run, in order
        super().__init__()

    def run(self) -> list[PolicyUpdate]:
        """Block until cfg.max_versions new versions are written or stop(); returns the announced updates."""
        torch.manual_seed(self.cfg.seed)
        rng = np.random.default_rng(self.cfg.seed)
        policy, step, version = self._resume()
        store = self._open_store()
        if store is None:
            return self.updates
        writer = self._tensorboard()
        try:
            dataset = FrameDataset(dataset_keys(policy.config if policy is not None else self.policy_config))
            optimizer = None if policy is None else make_optimizer(policy)
            progress = _ProgressLog(self.cfg.log_every_steps, self.on_progress, writer)
            written = 0
            while not self._stop.is_set() and (self.cfg.max_versions <= 0 or written < self.cfg.max_versions):
                if not self._wait_for_data(store, dataset):
                    break
                normalizer = fit_normalizer(dataset)
                if policy is None:
                    policy = make_policy(self.policy_type, self.policy_config, normalizer).to(self.cfg.device)
                    optimizer = make_optimizer(policy)
                else:
                    policy.set_normalizer(normalizer)
                log.info("training v%d: %d steps on %d episodes (%d frames)", version + 1,
                         self.cfg.steps_per_version, len(dataset.episode_ids), len(dataset))
                new_step, _ = train_steps(policy, optimizer, dataset, self.cfg.steps_per_version,
                                          self.cfg.batch_size, rng, step, progress, self._stop.is_set)
                if new_step - step < self.cfg.steps_per_version:
                    break  # stopped mid-version: a partly trained version is not published
                step = new_step
                parent = version or None
                version = max([version, *list_versions(self.checkpoint_dir)]) + 1
                path = save_checkpoint(policy, normalizer, PolicySchema.from_store_schema(store.schema),
                                       self.checkpoint_dir, version, step, parent=parent,
                                       extra={"episodes": len(dataset.episode_ids), "frames": len(dataset)})
                self._announce(make_update(path))
                written += 1
        finally:
            store.close()
            if writer is not None:
                writer.close()
        return self.updates

    # ---- helpers ----------------------------------------------------------------------------------
    def _resume(self) -> tuple[Policy | None, int, int]:
        """(policy, step, version) from the latest checkpoint, or (None, 0, 0) on a fresh start."""
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            return None, 0, 0
        policy, manifest = load_policy(latest, device=self.cfg.device)
        if manifest.policy_type != self.policy_type:
            raise ValueError(f"{latest} holds a {manifest.policy_type!r} policy but the learner is configured for "
                             f"{self.policy_type!r}; use another checkpoint dir or policy={manifest.policy_type}")
        if policy.config != self.policy_config:
            log.warning("resuming %s with its saved config %s (configured: %s)", latest, policy.config,
                        self.policy_config)
        log.info("resuming from %s (step %d)", latest, manifest.step)
        self._announce(make_update(latest))
        return policy, manifest.step, manifest.version


    def _wait_for_data(self, store: Any, dataset: FrameDataset) -> bool:
        """Load newly committed eligible episodes; wait until ≥ min_episodes. False if stopped first."""
        waited = False
        while True:
            store.refresh()
            episodes = eligible_episodes(store, self.cfg.sources, self.cfg.success_only, self.cfg.task)
            if len(episodes) >= self.cfg.min_episodes:
                dataset.add_episodes(store, episodes)
                return True
            if not waited:
                log.info("waiting for %d eligible episodes (have %d; sources %s, success_only %s)",
                         self.cfg.min_episodes, len(episodes), self.cfg.sources, self.cfg.success_only)
                waited = True
            if self._stop.wait(self.cfg.poll_interval_s):
                return False


    def _tensorboard(self) -> Any | None:
        if self.cfg.tensorboard_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=self.cfg.tensorboard_dir)
