"""Frames (obs_t, action_t) of chosen store episodes, held in memory for behaviour cloning.

    store.episodes(source, success, task) ─► eligible ids ─► get_episode(i, keys) ─► FrameDataset arrays
                                                                           └─► sample(B) ─► torch batch

Limit (skeleton): every frame of the chosen episodes is held in RAM as uint8. Two 128×128 cameras are
~98 KB per frame, so ~1 GB per 10k frames; a store much larger than that needs a streaming sampler that
reads shards on demand instead of `FrameDataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from robot_stack.types import ACTION_KEY

log = logging.getLogger(__name__)


def eligible_episodes(store: Any, sources: Sequence[str] | None = None, success_only: bool = True,
                      task: str | None = None) -> list[int]:
    """Committed episode indices from any of `sources` (None = all), successful only if asked, of `task`."""
    success = True if success_only else None
    if sources is None:
        return sorted(store.episodes(success=success, task=task))
    ids: set[int] = set()
    for source in sources:
        ids.update(store.episodes(source=source, success=success, task=task))
    return sorted(ids)


class FrameDataset:
    """In-memory frames: {key: (N, *shape)} for the given keys plus `episode` (N,) store episode ids."""

    def __init__(self, keys: Sequence[str]):
        if ACTION_KEY not in keys:
            raise ValueError(f"a BC dataset needs {ACTION_KEY!r} among its keys, got {list(keys)}")
        self.keys = list(keys)
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        self._arrays: dict[str, np.ndarray] | None = None
        self.episode_ids: list[int] = []
        self._episode_of_frame: list[np.ndarray] = []
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None   # sample_window's per-frame episode rows

    @classmethod
    def from_store(cls, store: Any, episodes: Sequence[int], keys: Sequence[str]) -> FrameDataset:
        ds = cls(keys)
        ds.add_episodes(store, episodes)
        return ds

    def add_episodes(self, store: Any, episodes: Sequence[int]) -> int:
        """Load episodes not loaded yet (the learner calls this as the store grows); returns #frames added."""
        loaded = set(self.episode_ids)
        new = [i for i in episodes if i not in loaded]
        added = 0
        for i in new:
            ep = store.get_episode(i, keys=self.keys)
            n = len(ep[ACTION_KEY])
            for k in self.keys:
                self._parts[k].append(np.asarray(ep[k]))
            self._episode_of_frame.append(np.full(n, i, dtype=np.int64))
            self.episode_ids.append(i)
            added += n
        if new:
            self._arrays = self._bounds = None  # re-built lazily on the next access
            log.info("dataset: +%d episodes (+%d frames) -> %d episodes, %d frames",
                     len(new), added, len(self.episode_ids), len(self))
        return added

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """{key: (N, *shape)} over all loaded frames."""
        if self._arrays is None:
            if not self.episode_ids:
                raise ValueError("the dataset holds no episodes yet")
            self._arrays = {k: np.concatenate(v) for k, v in self._parts.items()}
            # Keep one copy, not the per-episode parts as well.
            self._parts = {k: [a] for k, a in self._arrays.items()}
        return self._arrays

    @property
    def episode_of_frame(self) -> np.ndarray:
        """(N,) store episode id of each frame."""
        return np.concatenate(self._episode_of_frame) if self._episode_of_frame else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return sum(len(a) for a in self._parts[ACTION_KEY])

    def sample(self, batch_size: int, rng: np.random.Generator, device: str | torch.device = "cpu"
               ) -> dict[str, torch.Tensor]:
        """Uniformly sampled frames (with replacement): {key: (B, *shape)} tensors in physical units."""
        arrays = self.arrays
        idx = rng.integers(0, len(self), size=batch_size)
        return {k: torch.from_numpy(np.ascontiguousarray(a[idx])).to(device) for k, a in arrays.items()}

    def sample_window(self, batch_size: int, rng: np.random.Generator, device: str | torch.device = "cpu",
                      obs_offsets: Sequence[int] = (0,), action_offsets: Sequence[int] = (0,)
                      ) -> dict[str, torch.Tensor]:
        """Uniformly sampled frames t with temporal windows, for action-chunk policies (`Policy.data_window()`):
        observation keys (B, len(obs_offsets), ...) at t + obs_offsets, the action (B, len(action_offsets), A) at
        t + action_offsets. Steps outside t's episode repeat its first/last frame (diffusion_policy's
        SequenceSampler and LeRobot's delta_timestamps pad the same way), so no window mixes two episodes."""
        arrays = self.arrays
        idx = rng.integers(0, len(self), size=batch_size)
        first, last = self._episode_bounds()
        lo, hi = first[idx, None], last[idx, None]
        out = {}
        for k, a in arrays.items():
            offsets = np.asarray(action_offsets if k == ACTION_KEY else obs_offsets, dtype=np.int64)
            rows = np.clip(idx[:, None] + offsets[None, :], lo, hi)
            out[k] = torch.from_numpy(np.ascontiguousarray(a[rows])).to(device)
        return out

    def _episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, last) (N,) row of each frame's episode (episodes are contiguous: added one at a time); built once
        per data change, not per batch (the sampler runs every training step)."""
        if self._bounds is None:
            lengths = [len(e) for e in self._episode_of_frame]
            ends = np.cumsum(lengths)
            starts = ends - lengths
            self._bounds = (np.repeat(starts, lengths), np.repeat(ends - 1, lengths))
        return self._bounds
