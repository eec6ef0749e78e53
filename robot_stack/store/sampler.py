"""Training sampler over a TrajectoryStore: random timesteps with history, action windows, n-step returns.

    store.episodes(split, filters) ─► eligible episodes ─► uniform random (episode, t) over their steps
          │                                                   │ grouped by episode
          ▼                                                   ▼
    EpisodeCache (LRU, decoded in RAM up to cache_budget_bytes) ─► gather windows ─► batch dict (numpy)
          ▲ whole episode read once: images via fastread (shard file -> numcodecs), low-dim via zarr

Why whole episodes: on this store zarr's per-chunk overhead, not decoding, limits random access (one image
frame = one inner chunk); reading an episode's shards once and sampling from RAM turns ~250 samples/s into
thousands (benchmarks/results/store.md). The core is numpy only; `torch_loader` wraps it for DataLoader
workers.

A batch (B = batch_size, To = n_obs_steps, Ta = action_horizon):
    obs[<key>]        (B, To, *shape)   steps t-To+1 .. t, repeated first frame before the episode start
    obs_mask          (B, To) bool      False where the step was padding
    action            (B, Ta, A)        steps t .. t+Ta-1, repeated last action past the episode end
    action_mask       (B, Ta) bool
    next_obs[<key>]   (B, To, *shape)   the history ending at t + n_step (clamped to the last step)
    reward            (B,) float32      n-step return  sum_{k<m} discount^k r_{t+k},  m = min(n_step, T - t)
    bootstrap         (B,) float32      discount^m, or 0 when the window reached a terminal end (Q target:
                                        reward + bootstrap * Q(next_obs))
    done              (B,) bool         the n-step window reached the episode end
    mc_return         (B,) float32      Monte-Carlo return-to-go sum_{k>=0} discount^k r_{t+k} (Cal-QL)
    task              list[str] (B)     the episode's language instruction
    episode, t        (B,) int64

Rewards: RewardConfig.source = "key" reads data[reward_key] (T,), "success" derives a sparse reward from
EpisodeMeta.success on the last step (success_reward / failure_reward, 0 elsewhere), "auto" (default) uses the
key when the store has it and the success label otherwise. The last step is terminal when the episode
succeeded (terminal_on="success"), always ("end") or never ("never": every end is a time-limit truncation).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from robot_stack.store.fastread import ArrayReader
from robot_stack.store.returns import mc_returns
from robot_stack.types import ACTION_KEY, IMAGE_PREFIX, STATE_KEY

log = logging.getLogger(__name__)

REWARD_KEY = "reward"


@dataclass
class RewardConfig:
    source: str = "auto"  # "auto" | "key" | "success"
    key: str = REWARD_KEY
    success_reward: float = 1.0
    failure_reward: float = 0.0
    terminal_on: str = "success"  # "success" | "end" | "never"
    # Cal-QL (JaxCQL calc_return_to_go): a trajectory whose every reward equals `failure_reward` gets
    # mc_return = failure_reward / (1 − γ) at every step ("it would have failed forever"), not its finite sum.
    failed_as_infinite_horizon: bool = True

    def __post_init__(self) -> None:
        if self.source not in ("auto", "key", "success"):
            raise ValueError(f"RewardConfig.source must be 'auto', 'key' or 'success', got {self.source!r}")
        if self.terminal_on not in ("success", "end", "never"):
            raise ValueError(f"RewardConfig.terminal_on must be 'success', 'end' or 'never', got {self.terminal_on!r}")


@dataclass
class SamplerConfig:
    obs_keys: tuple[str, ...] | None = None  # None: every image key + observation.state
    n_obs_steps: int = 1
    action_horizon: int = 1
    n_step: int = 1
    discount: float = 0.99
    reward: RewardConfig = field(default_factory=RewardConfig)
    cache_budget_bytes: int = 4 << 30
    split: str | None = None  # "train" | "val" | None (all)
    sources: tuple[str, ...] | None = None
    success: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_obs_steps", "action_horizon", "n_step"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SamplerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"SamplerConfig.discount must be in [0, 1], got {self.discount}")


class _Episode:
    """One decoded episode: arrays {key: (T, *shape)}, rewards (T,), return-to-go (T,), terminal flag, task."""

    def __init__(self, arrays: dict[str, np.ndarray], rewards: np.ndarray, terminal: bool, task: str, discount: float,
                 failure_reward: float | None = None):
        self.arrays, self.rewards, self.terminal, self.task = arrays, rewards, terminal, task
        self.T = len(rewards)
        # Return-to-go (a non-terminal end is not bootstrapped: MC), with Cal-QL's failed-trajectory rule when
        # `failure_reward` is given: the learner's bound and this sampler share robot_stack.store.returns.
        self.rtg = mc_returns(rewards, None, discount, failure_reward).astype(np.float64)
        self.nbytes = sum(a.nbytes for a in arrays.values())


class TrajectorySampler:
    """Uniform random timesteps of the eligible episodes of a store (read-only or the writer's own object)."""

    def __init__(self, store, config: SamplerConfig | None = None, **overrides):
        self.store = store
        self.cfg = config or SamplerConfig(**overrides)
        feats = store.schema.features
        keys = self.cfg.obs_keys
        if keys is None:
            keys = tuple(k for k in feats if k.startswith(IMAGE_PREFIX)) + ((STATE_KEY,) if STATE_KEY in feats else ())
        unknown = [k for k in (*keys, ACTION_KEY) if k not in feats]
        if unknown:
            raise KeyError(f"sampler keys {unknown} are not features of store {store.path}; features: {sorted(feats)}")
        self.obs_keys = tuple(keys)
        rc = self.cfg.reward
        has_key = rc.key in feats
        if rc.source == "key" and not has_key:
            raise KeyError(f"RewardConfig.source='key' but the store has no {rc.key!r} feature; use source='success' "
                           "to derive a sparse reward from the episode success labels")
        self.reward_from_key = rc.source == "key" or (rc.source == "auto" and has_key)
        self._readers: dict[str, ArrayReader] = {}
        self._cache: OrderedDict[int, _Episode] = OrderedDict()
        self._cache_bytes = 0
        self.rng = np.random.default_rng(self.cfg.seed)
        self.refresh()

    # ------------------------------------------------------------------ episode set
    def refresh(self) -> int:
        """Pick up newly committed episodes and edits (exclusions, split); returns #eligible episodes."""
        self.store.refresh()
        ids: set[int] = set()
        for src in (self.cfg.sources or (None,)):
            ids.update(self.store.episodes(source=src, success=self.cfg.success, split=self.cfg.split))
        self.episode_ids = np.array(sorted(ids), dtype=np.int64)
        ends = self.store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.lengths = (ends - starts)[self.episode_ids] if len(self.episode_ids) else np.zeros(0, np.int64)
        self._cum = np.cumsum(self.lengths)
        for i in [i for i in self._cache if i not in ids]:  # excluded since: forget them
            self._cache_bytes -= self._cache.pop(i).nbytes
        return len(self.episode_ids)

    @property
    def n_samples(self) -> int:
        """Number of distinct timesteps that can be sampled."""
        return int(self._cum[-1]) if len(self._cum) else 0

    # ------------------------------------------------------------------ cache
    def _read(self, key: str, start: int, stop: int) -> np.ndarray:
        if key.startswith(IMAGE_PREFIX):
            r = self._readers.get(key)
            if r is None:
                r = self._readers[key] = ArrayReader(self.store.path / "data" / key)
            out = r.read(start, stop)
            if out is not None:
                return out
        return self.store.read(key, start, stop)

    def episode(self, i: int) -> _Episode:
        """Decoded episode i from the LRU cache (loaded on a miss)."""
        ep = self._cache.get(i)
        if ep is not None:
            self._cache.move_to_end(i)
            return ep
        s = self.store.episode_slice(i)
        keys = dict.fromkeys((*self.obs_keys, ACTION_KEY))
        if self.reward_from_key:
            keys[self.cfg.reward.key] = None
        arrays = {k: self._read(k, s.start, s.stop) for k in keys}
        meta = self.store.episode_meta(i)
        rc = self.cfg.reward
        T = s.stop - s.start
        if self.reward_from_key:
            rewards = np.asarray(arrays.pop(rc.key), dtype=np.float64).reshape(T)
        else:
            rewards = np.zeros(T, dtype=np.float64)
            rewards[-1] = rc.success_reward if meta.success else rc.failure_reward
        terminal = {"success": bool(meta.success), "end": True, "never": False}[rc.terminal_on]
        ep = _Episode(arrays, rewards, terminal, meta.task, self.cfg.discount,
                      rc.failure_reward if rc.failed_as_infinite_horizon else None)
        self._cache[i] = ep
        self._cache_bytes += ep.nbytes
        while self._cache_bytes > self.cfg.cache_budget_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return ep

    def warm_cache(self) -> int:
        """Load every eligible episode that fits the budget (call once before timing or training)."""
        for i in self.episode_ids:
            if self._cache_bytes >= self.cfg.cache_budget_bytes:
                break
            self.episode(int(i))
        return len(self._cache)

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> dict:
        """A batch of `batch_size` uniformly random timesteps (see the module docstring for the layout)."""
        if self.n_samples == 0:
            raise ValueError(f"no eligible episodes in store {self.store.path} (split={self.cfg.split!r}, "
                             f"sources={self.cfg.sources}, success={self.cfg.success}); record or include some")
        g = self.rng.integers(0, self.n_samples, size=batch_size)
        pos = np.searchsorted(self._cum, g, side="right")
        t = g - np.concatenate([[0], self._cum[:-1]])[pos]
        return self.gather(self.episode_ids[pos], t)

    def gather(self, episodes: np.ndarray, t: np.ndarray) -> dict:
        """The batch for explicit (episode, t) pairs, (B,) each; grouped by episode so each is touched once."""
        cfg = self.cfg
        B, To, Ta, n = len(t), cfg.n_obs_steps, cfg.action_horizon, cfg.n_step
        feats = self.store.schema.features
        obs = {k: np.empty((B, To, *feats[k].shape), dtype=feats[k].dtype) for k in self.obs_keys}
        nobs = {k: np.empty_like(v) for k, v in obs.items()}
        act = np.empty((B, Ta, *feats[ACTION_KEY].shape), dtype=feats[ACTION_KEY].dtype)
        out = {"obs_mask": np.empty((B, To), bool), "action_mask": np.empty((B, Ta), bool),
               "reward": np.empty(B, np.float32), "bootstrap": np.empty(B, np.float32),
               "done": np.empty(B, bool), "mc_return": np.empty(B, np.float32)}
        task: list[str] = [""] * B
        hist, fut, powers = np.arange(-To + 1, 1), np.arange(Ta), cfg.discount ** np.arange(n)
        for e in np.unique(episodes):
            rows = np.flatnonzero(episodes == e)
            ep = self.episode(int(e))
            tt = t[rows]
            oi = tt[:, None] + hist[None]  # (b, To)
            ni = np.minimum(tt + n, ep.T - 1)[:, None] + hist[None]
            ai = tt[:, None] + fut[None]  # (b, Ta)
            out["obs_mask"][rows] = oi >= 0
            out["action_mask"][rows] = ai < ep.T
            oi, ni, ai = np.clip(oi, 0, ep.T - 1), np.clip(ni, 0, ep.T - 1), np.minimum(ai, ep.T - 1)
            for k in self.obs_keys:
                a = ep.arrays[k]
                obs[k][rows] = a[oi]
                nobs[k][rows] = a[ni]
            act[rows] = ep.arrays[ACTION_KEY][ai]
            # n-step return: rewards of steps t .. t+m-1, m = min(n, T - t)
            ri = tt[:, None] + np.arange(n)[None]
            valid = ri < ep.T
            r = np.where(valid, ep.rewards[np.minimum(ri, ep.T - 1)], 0.0)
            m = valid.sum(1)
            done = tt + n >= ep.T
            out["reward"][rows] = (r * powers[None]).sum(1)
            out["bootstrap"][rows] = np.where(done & ep.terminal, 0.0, cfg.discount ** m)
            out["done"][rows] = done
            out["mc_return"][rows] = ep.rtg[tt]
            for r_ in rows:
                task[r_] = ep.task
        out.update(obs=obs, next_obs=nobs, action=act, task=task,
                   episode=np.asarray(episodes, np.int64), t=np.asarray(t, np.int64))
        return out


def torch_loader(store_path, config: SamplerConfig | None = None, batch_size: int = 256, num_workers: int = 2,
                 refresh_every: int = 100, **loader_kwargs):
    """A torch DataLoader yielding sampler batches as tensors (task stays a list of str).

    Each worker opens the store read-only, builds its own sampler (seeded by config.seed + worker id, its own
    RAM cache: budget per worker) and refreshes every `refresh_every` batches to see new episodes."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    from robot_stack.store.trajectory import TrajectoryStore

    cfg = config or SamplerConfig()

    class _DS(IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            wid = 0 if info is None else info.id
            store = TrajectoryStore.open(store_path, mode="r")
            s = TrajectorySampler(store, SamplerConfig(**{**cfg.__dict__, "seed": cfg.seed + 1000 * wid}))
            k = 0
            while True:
                if k and k % refresh_every == 0:
                    s.refresh()
                b = s.sample(batch_size)
                k += 1
                yield _to_torch(torch, b)

    return DataLoader(_DS(), batch_size=None, num_workers=num_workers,
                      persistent_workers=num_workers > 0, **loader_kwargs)


def _to_torch(torch, b):
    if isinstance(b, dict):
        return {k: _to_torch(torch, v) for k, v in b.items()}
    if isinstance(b, np.ndarray):
        return torch.from_numpy(b)
    return b
