"""Transitions for offline/online RL built from the store's public API, rewards/masks/MC returns computed on load.

    store.episodes(...) ─► get_episode(i, keys) + episode_meta(i) (.task, .success)
        ─► reward recipe (losses.ptr_rewards: last-k steps of a successful episode positive, mask 0 there)
        ─► MC return-to-go (losses.mc_returns; failed trajectory -> r_neg/(1−γ)), computed once per committed episode
        ─► TransitionDataset: frames in RAM, next(t) = t+1 inside the episode (the last step points at itself)
        ─► sample(B, rng) ─► {obs keys, "next."+obs keys, action, reward, mask, mc_return, task_index, success}
            tensors (B, ...); `success` (1.0/0.0) is the episode's label, for losses that imitate successes only

`TransitionSource` is the small interface the learner uses, so a store-level sampler (n-step / MC returns in the
store, being added elsewhere) can replace `TransitionDataset` without touching the algorithms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from robot_stack.algos.losses import mc_returns, ptr_rewards
from robot_stack.policies.base import dataclass_from_dict
from robot_stack.types import ACTION_KEY

log = logging.getLogger(__name__)
NEXT = "next."


@dataclass
class RewardConfig:
    """Sparse success reward (PTR §1 defaults): raw 1 on the last `num_final_reward_steps` steps of a successful
    episode, r = scale·raw + bias, mask = 1 − raw (term_as_rew). A failed episode has every r = bias, so its MC
    return is bias/(1−γ) when `failed_as_infinite_horizon` (Cal-QL calc_return_to_go)."""

    num_final_reward_steps: int = 3
    scale: float = 11.0
    bias: float = -1.0
    term_as_rew: bool = True
    failed_as_infinite_horizon: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RewardConfig:
        return dataclass_from_dict(cls, d)


class TransitionSource(Protocol):
    episode_ids: list[int]

    def __len__(self) -> int: ...

    def add_episodes(self, store: Any, episodes: Sequence[int]) -> int: ...

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]: ...


class TransitionDataset:
    """In-memory transitions of whole episodes (RAM cost as robot_stack.learn.dataset.FrameDataset)."""

    def __init__(self, obs_keys: Sequence[str], reward: RewardConfig, discount: float, tasks: Sequence[str] = ()):
        self.obs_keys = list(obs_keys)
        self.reward, self.discount = reward, discount
        self.tasks = list(tasks)
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in [*self.obs_keys, ACTION_KEY, "reward", "mask",
                                                                     "mc_return", "task_index", "success", "next_index"]}
        self._arrays: dict[str, np.ndarray] | None = None
        self.episode_ids: list[int] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def episode_arrays(self, n_steps: int, success: bool | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward, mask, mc_return), (T,) each, of one episode (the recipe in the module docstring)."""
        r = self.reward
        rewards, masks = ptr_rewards(n_steps, bool(success), r.num_final_reward_steps, r.scale, r.bias, r.term_as_rew)
        failure = r.bias if r.failed_as_infinite_horizon else None
        return rewards, masks, mc_returns(rewards, masks, self.discount, failure)

    def add_episodes(self, store: Any, episodes: Sequence[int]) -> int:
        """Load committed episodes not loaded yet; MC returns are computed here, once the episode is committed."""
        loaded = set(self.episode_ids)
        added = 0
        for i in episodes:
            if i in loaded:
                continue
            meta = store.episode_meta(i)
            ep = store.get_episode(i, keys=[*self.obs_keys, ACTION_KEY])
            n = len(ep[ACTION_KEY])
            if n == 0:
                continue
            reward, mask, mc = self.episode_arrays(n, meta.success)
            task = self.tasks.index(meta.task) if meta.task in self.tasks else 0
            for k in [*self.obs_keys, ACTION_KEY]:
                self._parts[k].append(np.asarray(ep[k]))
            self._parts["reward"].append(reward)
            self._parts["mask"].append(mask)
            self._parts["mc_return"].append(mc)
            self._parts["task_index"].append(np.full(n, task, np.int64))
            self._parts["success"].append(np.full(n, float(bool(meta.success)), np.float32))
            nxt = self._n + np.minimum(np.arange(n) + 1, n - 1)   # global index of obs_{t+1}; last step -> itself
            self._parts["next_index"].append(nxt.astype(np.int64))
            self.episode_ids.append(i)
            self._n += n
            added += n
        if added:
            self._arrays = None
        return added

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {k: np.concatenate(v) for k, v in self._parts.items()}
            self._parts = {k: [a] for k, a in self._arrays.items()}
        return self._arrays

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Uniform transitions with replacement -> CPU tensors (B, ...) (see module docstring for the keys)."""
        if self._n == 0:
            raise ValueError("the transition dataset holds no episodes yet")
        a = self.arrays
        idx = rng.integers(0, self._n, size=batch_size)
        nxt = a["next_index"][idx]
        out = {k: torch.from_numpy(np.ascontiguousarray(a[k][idx])) for k in [*self.obs_keys, ACTION_KEY, "reward",
                                                                               "mask", "mc_return", "task_index",
                                                                               "success"]}
        out.update({NEXT + k: torch.from_numpy(np.ascontiguousarray(a[k][nxt])) for k in self.obs_keys})
        return out


def concat_batches(batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    batches = [b for b in batches if b]
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def mixed_sample(pools: list[TransitionDataset], ratio: float, batch_size: int, rng: np.random.Generator
                 ) -> dict[str, torch.Tensor]:
    """floor(ratio·B) from pools[0], the rest from pools[1]; an empty pool gives its share to the other."""
    from robot_stack.learn.mixing import split_batch

    if len(pools) == 1 or len(pools[1]) == 0:
        return pools[0].sample(batch_size, rng)
    if len(pools[0]) == 0:
        return pools[1].sample(batch_size, rng)
    n0, n1 = split_batch(batch_size, ratio)
    return concat_batches([pools[0].sample(n0, rng) if n0 else {}, pools[1].sample(n1, rng) if n1 else {}])
