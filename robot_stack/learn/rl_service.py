"""RL learner service: offline pre-training then online fine-tuning from the store (PTR §1, Cal-QL §0/§2).

    resume(latest checkpoint: weights + target critic + α/α' + optimiser moments + step + RNG) or fresh start
      │
    store (read-only) ─► eligible offline episodes (sources; task filter) ≥ min_episodes
      ├─► validation pool (every val_every_episode-th episode, held out: overfitting signal)
      ├─► prior pool / target pool (PTR: target_task's episodes; schedule 100 % prior, then 90/10 after switch_step)
      └─► normaliser fitted once (a critic's action semantics must not drift), policy built (tasks, text embeddings)
      │
    offline: [prefetch thread: mixed batch(step)] ─► algo.update ─► metrics ─► tensorboard + progress line
             every checkpoint_every_steps: save (atomic, + optim.safetensors + train_state.json) ─► announce
      │ (online=true)
    online:  refresh store ─► new committed episodes of online_sources (MC returns computed on load)
             ─► budget += utd_ratio · new transitions ─► train on offline/online mix (mixing_ratio, 0.5) ─► save/announce

ROS-free; the learner node and `python -m robot_stack.learn.run` are thin adapters over `RLLearnerService`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_stack.algos.base import Algorithm, algo_class, make_algo
from robot_stack.inference.manifest import PolicyUpdate, make_update
from robot_stack.learn.background import BackgroundService
from robot_stack.learn.mixing import PriorTargetSchedule, offline_online_ratio
from robot_stack.learn.prefetch import prefetch
from robot_stack.learn.rl_dataset import RewardConfig, TransitionDataset, mixed_sample
from robot_stack.policies.base import Policy, dataclass_from_dict, make_policy, policy_class
from robot_stack.policies.checkpoint import (
    PolicySchema,
    latest_checkpoint,
    list_versions,
    load_policy,
    save_checkpoint,
)
from robot_stack.policies.normalizer import ACTION_NORMALIZATIONS, Normalizer, ee_delta_bounds
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, image_key

log = logging.getLogger(__name__)

OPTIM_FILE = "optim.safetensors"
TRAIN_STATE_FILE = "train_state.json"
ProgressFn = Callable[[dict[str, float]], None]


@dataclass
class RLLearnerConfig:
    """Fields of `robot_stack/conf/learner/{cql,ptr,calql,bc_actor}.yaml` (unknown keys are refused)."""

    algo: str = "calql"
    algo_config: dict[str, Any] = field(default_factory=dict)
    policy_type: str = "actor_critic"
    policy_config: dict[str, Any] = field(default_factory=dict)
    # ee_delta actions map to [-1, 1] from the rig's physical per-step limits (PTR: WidowX ±0.05 m, ±0.25 rad), or
    # "quantile" for the data's q01/q99 (see robot_stack/policies/normalizer.py for why bounds are the default).
    action_normalization: str = "bounds"
    action_bounds: dict[str, float] = field(default_factory=lambda: {"translation_m": 0.05, "rotation_rad": 0.25})
    text_encoder: dict[str, Any] | None = None     # language conditioning: TextEncoderConfig fields
    reward: dict[str, Any] = field(default_factory=dict)   # RewardConfig fields
    sources: tuple[str, ...] = ("sim", "teleop", "import")  # offline data
    success_only: bool = False                    # RL learns from failures too
    task: str | None = None                       # only this task's episodes; None = every task (multi-task)
    target_task: str | None = None                # PTR: the new task; None = one pool
    target_switch_step: int = 0                   # PTR offline_finetuning_start (160k in the reference)
    prior_ratio_before: float = 1.0
    prior_ratio_after: float = 0.9
    min_episodes: int = 5
    offline_steps: int = 1000
    online: bool = False
    online_sources: tuple[str, ...] = ("policy", "practice")
    online_steps: int = 0                          # online gradient steps; 0 = until stop()
    mixing_ratio: float = 0.5                      # offline fraction of online batches; <0: N_off/(N_off+N_on)
    utd_ratio: float = 1.0                         # gradient steps per new online transition
    reset_optimizers_online: bool = False
    checkpoint_every_steps: int = 500
    batch_size: int = 64
    val_every_episode: int = 10                    # every k-th offline episode is held out; 0 = no validation
    val_every_steps: int = 100
    val_batch_size: int = 64
    log_every_steps: int = 50
    tensorboard_dir: str | None = None
    device: str = "cpu"
    amp_bf16: bool = True                          # bf16 autocast, CUDA only
    prefetch_depth: int = 2
    poll_interval_s: float = 2.0
    seed: int = 0
    distributed: dict[str, Any] | None = None      # DistConfig fields; None = single process

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RLLearnerConfig:
        cfg = dataclass_from_dict(cls, d)
        algo_class(cfg.algo)                       # unknown names fail here, listing the known ones
        if cfg.action_normalization not in ACTION_NORMALIZATIONS:
            raise ValueError(f"action_normalization {cfg.action_normalization!r}; known: {ACTION_NORMALIZATIONS}")
        return cfg


# ---- optimiser / RNG state as safetensors + JSON (no pickles) ------------------------------------
def optimizer_state_to_files(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"{name}/{pid}/{k}"] = v.detach().to("cpu").contiguous().clone()
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    tensors["rng/torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng/torch_cuda"] = torch.cuda.get_rng_state()
    return tensors, meta


def load_optimizer_state(optimizers: dict[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor],
                         meta: dict) -> None:
    for name, opt in optimizers.items():
        if name not in meta:
            raise ValueError(f"saved training state has no optimiser {name!r} (has {sorted(meta)}); "
                             "was the checkpoint written by another algorithm?")
        state: dict[int, dict[str, Any]] = {}
        for key, t in tensors.items():
            opt_name, _, rest = key.partition("/")
            if opt_name == name:
                pid, k = rest.split("/", 1)
                state.setdefault(int(pid), {})[k] = t
        for pid, sc in meta[name]["scalars"].items():
            state.setdefault(int(pid), {}).update(sc)
        configured = [g["lr"] for g in opt.param_groups]
        opt.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})
        # The moments resume; the learning rate is the configuration's. torch's load_state_dict would restore the
        # saved lr, so a run resumed with another actor_lr/critic_lr silently kept the old one.
        for g, lr in zip(opt.param_groups, configured, strict=True):
            if g["lr"] != lr:
                log.info("optimiser %s: learning rate %g from the config (the checkpoint had %g)", name, lr, g["lr"])
                g["lr"] = lr
    torch.set_rng_state(tensors["rng/torch_cpu"])
    if "rng/torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/torch_cuda"])


def shuffle_batch(batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """The rows of a concatenated batch in random order. Sources are drawn pool by pool (offline then online,
    prior then target), and RLPD/AWAC split the batch into `utd` consecutive minibatches and step the actor on the
    last one: unshuffled, the critic alternated between pure-offline and pure-online minibatches and the actor saw
    online data only (its demo BC term nothing at all) once online data existed. The reference gets the same
    property by interleaving: ikostrikov/rlpd's `combine` writes the offline rows to [0::2] and the online rows to
    [1::2] before `update` slices the utd minibatches."""
    n = len(next(iter(batch.values())))
    perm = torch.from_numpy(rng.permutation(n))
    return {k: v[perm] for k, v in batch.items()}


class _Progress:
    """Progress line (steps/s, samples/s, key metrics) + every metric to tensorboard + the on_progress callback."""

    KEY_METRICS = ("critic/td_loss", "critic/q_data", "critic/cql_diff", "critic/bound_rate", "actor/entropy",
                   "actor/loss", "actor/bc_mse")

    def __init__(self, every: int, batch_size: int, writer: Any | None, on_progress: ProgressFn | None):
        self.every, self.batch_size, self.writer, self.on_progress = max(1, every), batch_size, writer, on_progress
        self._sum: dict[str, float] = {}
        self._n = 0
        self._t = time.monotonic()

    def add(self, step: int, metrics: dict[str, float], phase: str) -> None:
        for k, v in metrics.items():
            self._sum[k] = self._sum.get(k, 0.0) + v
        self._n += 1
        if step % self.every:
            return
        now = time.monotonic()
        report = {k: v / self._n for k, v in self._sum.items()}
        sps = self._n / max(now - self._t, 1e-9)
        report.update({"perf/steps_per_s": sps, "perf/samples_per_s": sps * self.batch_size, "step": float(step)})
        shown = "  ".join(f"{k.split('/')[-1]} {report[k]:.3g}" for k in self.KEY_METRICS if k in report)
        log.info("[%s] step %d  %.2f steps/s  %.0f samples/s  %s", phase, step, sps, sps * self.batch_size, shown)
        if self.writer is not None:
            for k, v in report.items():
                if k != "step":
                    self.writer.add_scalar(k, v, step)
        if self.on_progress is not None:
            self.on_progress(report)
        self._sum, self._n, self._t = {}, 0, now

    def scalars(self, step: int, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, step)


class RLLearnerService(BackgroundService):
    """See module docstring. `run()` blocks; `start()`/`stop()`/`join()` run it on a thread (the ROS node)."""

    _thread_name = "rl-learner"

    def __init__(self, store_path: str | Path, checkpoint_dir: str | Path, cfg: RLLearnerConfig,
                 announce: Callable[[PolicyUpdate], None] | None = None, on_progress: ProgressFn | None = None):
        self.store_path, self.checkpoint_dir, self.cfg = Path(store_path), Path(checkpoint_dir), cfg
        self.announce, self.on_progress = announce, on_progress
        self.updates: list[PolicyUpdate] = []
        self.metrics_history: list[dict[str, float]] = []   # every update's metrics (tests, benchmarks)
        self.val_history: list[dict[str, float]] = []
        self.reward_cfg = RewardConfig.from_dict(cfg.reward)
        algo_cls = algo_class(cfg.algo)
        self.algo_cfg = algo_cls.config_class.from_dict(cfg.algo_config)
        super().__init__()
        self.policy: Policy | None = None
        self.algo: Algorithm | None = None
        self.step = 0
        self.version = 0
        self.phase = "offline"

    # ---- main loop ----------------------------------------------------------------------------------
    def run(self) -> list[PolicyUpdate]:
        store = self.open()
        if store is None:
            return self.updates
        try:
            self.train_offline()
            if self.cfg.online and not self._stop.is_set():
                self._online(store)
        finally:
            self.close()
        return self.updates

    # ---- the steps of run(), public for in-process loops (robot_stack.learn.online) -------------------
    def open(self) -> Any | None:
        """Distributed init, store (read-only), resume or build the policy once enough offline data is there.
        Returns the store, or None when stopped before that; close() releases what this opened."""
        from robot_stack.algos.distributed import (
            DistConfig,
            all_reduce_grads,
            broadcast_module,
            init_distributed,
            is_main_process,
        )

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        if cfg.distributed is not None:
            dcfg = DistConfig.from_dict(cfg.distributed)
            init_distributed(dcfg)
            self._rank = dcfg.rank
        else:
            self._rank = 0
        self._main = is_main_process()
        store = self._open_store()
        if store is None:
            return None
        self._store = store
        self._writer = self._tensorboard() if self._main else None
        try:
            resumed = self._resume()
            if not self._wait_for_data(store):
                self.close()
                return None
            self._load_pools(store)
            if not resumed:
                self._build(store)
            if cfg.distributed is not None:
                broadcast_module(self.policy)
                self.algo.grad_sync = all_reduce_grads
            dev = torch.device(cfg.device)
            self.algo.amp_dtype = torch.bfloat16 if (dev.type == "cuda" and cfg.amp_bf16) else None
            self._schema = PolicySchema.from_store_schema(store.schema)
            self._progress = _Progress(cfg.log_every_steps, cfg.batch_size, self._writer, self.on_progress)
        except BaseException:
            self.close()
            raise
        return store

    def close(self) -> None:
        store, writer = getattr(self, "_store", None), getattr(self, "_writer", None)
        self._store = self._writer = None
        if store is not None:
            store.close()
        if writer is not None:
            writer.close()

    def train_offline(self) -> None:
        """The offline phase up to cfg.offline_steps (checkpointing on the way); a no-op once past it."""
        cfg = self.cfg
        while self.phase == "offline" and self.step < cfg.offline_steps and not self._stop.is_set():
            n = min(cfg.offline_steps, self._next_checkpoint_step()) - self.step
            if self._train(n) < n:
                return
            if self.step >= cfg.offline_steps:
                self.phase = "online" if cfg.online else "done"
                if cfg.online and cfg.reset_optimizers_online:
                    self.algo.reset_optimizers()
            self._save()
        if self.phase == "offline" and self.step >= cfg.offline_steps:  # resumed exactly at the end
            self.phase = "online" if cfg.online else "done"

    def online_round(self, store: Any, save: bool = False) -> int:
        """One pass of the online loop without waiting: take in newly committed online episodes, then spend the
        update budget (utd_ratio per new transition, up to the next checkpoint). Returns the updates taken.
        save=True also checkpoints at the end of the round (an in-process loop's policy version per round)."""
        new = self._take_in_online(store)
        self._budget += self.cfg.utd_ratio * new
        return self._spend_budget(save)

    def _take_in_online(self, store: Any) -> int:
        """Start of every online round (shared with PA-RL's): newly committed online episodes into the online pool;
        returns the transitions added."""
        if self.phase == "offline":
            raise RuntimeError("online_round() before the offline phase ended; call train_offline() first")
        self.phase = "online"
        store.refresh()
        new = self.online_pool.add_episodes(store, self._online_episodes(store))
        if new:
            log.info("online: +%d transitions (%d online episodes, %d transitions)", new,
                     len(self.online_pool.episode_ids), len(self.online_pool))
        return new

    def _spend_budget(self, save: bool) -> int:
        """Take the update budget earned so far (in checkpoint-sized chunks, saving at each boundary), stopping early
        on stop() or the end of online_steps; returns the updates taken. Shared with learners that add their own
        phases to a round (PA-RL's distillation)."""
        cfg = self.cfg
        taken = 0
        while not self._stop.is_set():
            n = int(min(self._budget, self._next_checkpoint_step() - self.step))
            if cfg.online_steps > 0:
                n = min(n, cfg.offline_steps + cfg.online_steps - self.step)
            if n <= 0:
                break
            done = self._train(n)
            self._budget -= done
            taken += done
            if done < n:
                break
            if self.step % cfg.checkpoint_every_steps == 0 or self.online_finished:
                self._save()
        if save and taken and self.step % cfg.checkpoint_every_steps:
            self._save()
        return taken

    @property
    def online_finished(self) -> bool:
        cfg = self.cfg
        return cfg.online_steps > 0 and self.step >= cfg.offline_steps + cfg.online_steps

    def _online(self, store: Any) -> None:
        while not self._stop.is_set() and not self.online_finished:
            if self.online_round(store) == 0:
                self._stop.wait(self.cfg.poll_interval_s)

    def _next_checkpoint_step(self) -> int:
        every = self.cfg.checkpoint_every_steps
        return (self.step // every + 1) * every

    # ---- batches --------------------------------------------------------------------------------
    def make_batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of a global step: a pure function of (seed, rank, step) and the pools' contents."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self._rank, step])
        if self.phase == "online" and len(self.online_pool):
            ratio = offline_online_ratio(cfg.mixing_ratio, self._n_offline(), len(self.online_pool))
            offline = self._offline_batch(step, int(round(ratio * cfg.batch_size)), rng)
            online = self.online_pool.sample(cfg.batch_size - len(offline[ACTION_KEY]), rng) \
                if len(offline[ACTION_KEY]) < cfg.batch_size else {}
            from robot_stack.learn.rl_dataset import concat_batches
            return shuffle_batch(concat_batches([offline, online]), rng)
        return shuffle_batch(self._offline_batch(step, cfg.batch_size, rng), rng)

    def _offline_batch(self, step: int, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if n <= 0:
            return {}
        return mixed_sample([self.prior_pool, self.target_pool], self.schedule.ratio_at(step), n, rng)

    def _n_offline(self) -> int:
        return len(self.prior_pool) + len(self.target_pool)

    def _train(self, n: int) -> int:
        """n gradient steps (fewer if stopped); returns the number taken."""
        dev = torch.device(self.cfg.device)
        done = 0
        for step, batch in prefetch(range(self.step, self.step + n), self.make_batch, self.cfg.prefetch_depth):
            if self._stop.is_set():
                break
            batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
            self.algo.train_step = step
            metrics = self.algo.update(batch)
            self.step = step + 1
            done += 1
            self.metrics_history.append(metrics)
            self._progress.add(self.step, metrics, self.phase)
            if self.cfg.val_every_steps > 0 and self.step % self.cfg.val_every_steps == 0:
                self._validate()
        return done

    def _validate(self) -> None:
        """Q and TD error on held-out episodes vs. training episodes (offline-RL overfitting signal)."""
        if not len(self.val_pool):
            return
        rng = np.random.default_rng([self.cfg.seed, 1_000_003, self.step])
        dev = torch.device(self.cfg.device)
        out: dict[str, float] = {}
        for name, batch in (("val", self.val_pool.sample(self.cfg.val_batch_size, rng)),
                            ("train", self._offline_batch(self.step, self.cfg.val_batch_size, rng))):
            for k, v in self.algo.evaluate({k: t.to(dev) for k, t in batch.items()}).items():
                out[f"eval/{name}_{k}"] = v
        if "eval/val_q_data" in out and "eval/train_q_data" in out:
            out["eval/q_gap_train_minus_val"] = out["eval/train_q_data"] - out["eval/val_q_data"]
        out["step"] = float(self.step)
        self.val_history.append(out)
        self._progress.scalars(self.step, {k: v for k, v in out.items() if k != "step"})

    # ---- data -------------------------------------------------------------------------------------
    def _offline_episodes(self, store: Any) -> list[int]:
        success = True if self.cfg.success_only else None
        ids: set[int] = set()
        for source in self.cfg.sources:
            ids.update(store.episodes(source=source, success=success, task=self.cfg.task))
        return sorted(ids)

    def _online_episodes(self, store: Any) -> list[int]:
        ids: set[int] = set()
        for source in self.cfg.online_sources:
            ids.update(store.episodes(source=source, task=self.cfg.task))
        return sorted(ids)

    def _wait_for_data(self, store: Any) -> bool:
        waited = False
        while True:
            store.refresh()
            if len(self._offline_episodes(store)) >= self.cfg.min_episodes:
                return True
            if not waited:
                log.info("waiting for %d offline episodes (sources %s)", self.cfg.min_episodes, self.cfg.sources)
                waited = True
            if self._stop.wait(self.cfg.poll_interval_s):
                return False

    def _obs_keys(self, policy_config: Any) -> list[str]:
        env = [ENV_STATE_KEY] if getattr(policy_config, "use_environment_state", False) else []
        return [image_key(c) for c in policy_config.cameras] + [STATE_KEY] + env

    def _load_pools(self, store: Any) -> None:
        cfg = self.cfg
        episodes = self._offline_episodes(store)
        if self.policy is not None:
            tasks, pcfg = list(self.policy.config.tasks), self.policy.config
        else:
            pcfg = policy_class(cfg.policy_type).config_class.from_dict(self._policy_config_dict())
            tasks = list(pcfg.tasks) or sorted({store.episode_meta(i).task for i in episodes})
        self.tasks = tasks
        keys = self._obs_keys(pcfg)
        discount = self.algo_cfg.discount

        def pool() -> TransitionDataset:
            return TransitionDataset(keys, self.reward_cfg, discount, tasks)

        self.prior_pool, self.target_pool, self.val_pool, self.online_pool = pool(), pool(), pool(), pool()
        k = cfg.val_every_episode
        val = [e for j, e in enumerate(episodes) if k > 0 and len(episodes) > k and j % k == k - 1]
        train = [e for e in episodes if e not in set(val)]
        target = [e for e in train if cfg.target_task is not None and store.episode_meta(e).task == cfg.target_task]
        prior = [e for e in train if e not in set(target)]
        self.prior_pool.add_episodes(store, prior)
        self.target_pool.add_episodes(store, target)
        self.val_pool.add_episodes(store, val)
        self.schedule = (PriorTargetSchedule(cfg.target_switch_step, cfg.prior_ratio_before, cfg.prior_ratio_after)
                         if cfg.target_task is not None else PriorTargetSchedule(0, 1.0, 1.0))
        self._budget = getattr(self, "_resumed_budget", 0.0)
        log.info("offline data: %d prior + %d target transitions, %d validation (%d/%d/%d episodes), tasks %s",
                 len(self.prior_pool), len(self.target_pool), len(self.val_pool), len(prior), len(target), len(val),
                 tasks)

    def _policy_config_dict(self) -> dict[str, Any]:
        return dict(self.cfg.policy_config)

    def _build(self, store: Any) -> None:
        """Fresh policy: normaliser from the offline training data, task list, text embeddings, algorithm."""
        cfg = self.cfg
        arrays = [p.arrays for p in (self.prior_pool, self.target_pool) if len(p)]
        actions = np.concatenate([a[ACTION_KEY] for a in arrays])
        bounds = None
        if cfg.action_normalization == "bounds":
            b = cfg.action_bounds
            bounds = ee_delta_bounds(float(b["translation_m"]), float(b["rotation_rad"]), actions.shape[1])
        env = np.concatenate([a[ENV_STATE_KEY] for a in arrays]) if ENV_STATE_KEY in arrays[0] else None
        normalizer = Normalizer.fit(actions, np.concatenate([a[STATE_KEY] for a in arrays]), env_states=env,
                                    action_bounds=bounds)
        clipped = normalizer.clipped_fraction(actions)
        if bounds is not None and clipped.max() > 0.01:
            log.warning("%.1f %% of the offline actions exceed the action bounds in dimension %d (clipped to ±1): "
                        "raise learner.action_bounds to the rig's real per-step limits, or use "
                        "action_normalization=quantile", 100 * clipped.max(), int(clipped.argmax()))
        pdict = self._policy_config_dict()
        pdict["tasks"] = list(self.tasks)
        encoder = None
        if pdict.get("conditioning") == "language":
            from robot_stack.policies.text_encoder import make_text_encoder

            encoder = make_text_encoder(cfg.text_encoder or {})
            pdict["task_embedding_dim"] = encoder.dim
        pdict.setdefault("extra", {})
        pdict["extra"] = {**pdict["extra"], "algo": cfg.algo, "text_encoder": cfg.text_encoder}
        self.policy = make_policy(cfg.policy_type, pdict, normalizer).to(cfg.device)
        if encoder is not None and self.tasks:
            with torch.no_grad():
                self.policy.task_embeddings.copy_(encoder.encode(list(self.tasks)).to(cfg.device))
        self.normalizer = normalizer
        self.algo = make_algo(cfg.algo, self.algo_cfg, self.policy)

    # ---- checkpoints ------------------------------------------------------------------------------
    def _save(self) -> None:
        if not self._main:
            return
        from safetensors.torch import save

        tensors, meta = optimizer_state_to_files(self.algo.optimizers())
        state = {"step": self.step, "phase": self.phase, "budget": self._budget, "algo": self.cfg.algo,
                 "algo_config": asdict(self.algo_cfg), "optimizers": meta,
                 "online_episodes": list(self.online_pool.episode_ids)}
        parent = self.version or None
        self.version = max([self.version, *list_versions(self.checkpoint_dir)]) + 1
        path = save_checkpoint(self.policy, self.normalizer, self._schema, self.checkpoint_dir, self.version,
                               self.step, parent=parent,
                               extra={"algo": self.cfg.algo, "phase": self.phase,
                                      "offline_transitions": self._n_offline(),
                                      "online_transitions": len(self.online_pool)},
                               extra_files={OPTIM_FILE: save(tensors),
                                            TRAIN_STATE_FILE: (json.dumps(state, indent=1) + "\n").encode()})
        self._announce(make_update(path))

    def _resume(self) -> bool:
        """Load weights, optimiser moments, RNG, step and phase of the latest checkpoint; False on a fresh start."""
        from safetensors.torch import load_file

        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            return False
        policy, manifest = load_policy(latest, device=self.cfg.device)
        if not (latest / TRAIN_STATE_FILE).is_file():
            raise ValueError(f"{latest} has no {TRAIN_STATE_FILE}: it was not written by the RL learner; "
                             "use another checkpoint dir")
        state = json.loads((latest / TRAIN_STATE_FILE).read_text())
        if state["algo"] != self.cfg.algo:
            raise ValueError(f"{latest} was trained by {state['algo']!r}, the learner is configured for "
                             f"{self.cfg.algo!r}; use another checkpoint dir or learner.algo={state['algo']}")
        policy.train()
        self.policy, self.normalizer = policy, policy.normalizer
        self.algo = make_algo(self.cfg.algo, self.algo_cfg, policy)
        load_optimizer_state(self.algo.optimizers(), load_file(str(latest / OPTIM_FILE)), state["optimizers"])
        self.step, self.phase, self.version = int(state["step"]), str(state["phase"]), manifest.version
        self._resumed_budget = float(state.get("budget", 0.0))
        if self.phase == "done" and self.step < self.cfg.offline_steps:   # offline_steps raised since: continue
            self.phase = "offline"
        log.info("resumed %s at step %d (%s phase)", latest, self.step, self.phase)
        self._announce(make_update(latest))
        return True

    def _tensorboard(self) -> Any | None:
        if self.cfg.tensorboard_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=self.cfg.tensorboard_dir)
