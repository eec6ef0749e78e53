"""EpisodeWriter: incremental episode recording for the recorder (steps arrive one at a time at 5-30 Hz).

    add_step(frame) ──► buffer ──(every flush_every steps)──► data/<key>[end : end+k]   (past the committed end)
    commit(**meta)  ──► flush rest ──► fsync ──► meta/episode_info row ──► meta/episode_ends (commit marker)
    discard()       ──► truncate data/<key> back to the committed end

Flushing during the episode bounds memory (a 2-minute episode of two 480x640 cameras at 30 Hz is ~2 GB raw)
and spreads compression over the episode instead of stalling the control loop at commit; flushed steps stay
invisible to readers until commit.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from robot_stack.store.schema import EpisodeMeta, StoreError, validate_frame
from robot_stack.store.trajectory import TrajectoryStore

log = logging.getLogger(__name__)


class EpisodeWriter:
    """Writes one episode into a store opened in mode "a"; only one EpisodeWriter per store at a time."""

    def __init__(self, store: TrajectoryStore, meta: EpisodeMeta | dict, flush_every: int = 32):
        store._require_writable()
        if store._active_writer is not None:
            raise StoreError(f"store {store.path} already has an open EpisodeWriter; commit or discard it first")
        if int(flush_every) < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.store = store
        self.meta = EpisodeMeta.from_any(meta)
        if self.meta.start_time_ns is None:
            self.meta.start_time_ns = time.time_ns()
        self.flush_every = int(flush_every)
        self._features = store.schema.features
        self._start = store.n_steps  # this episode's first step in the flat arrays
        self._buf: dict[str, list[np.ndarray]] = {k: [] for k in self._features}
        self._n_buffered = 0
        self._n_flushed = 0
        self._done = False
        store._active_writer = self

    @property
    def n_steps(self) -> int:
        """Steps added so far (flushed + buffered)."""
        return self._n_flushed + self._n_buffered

    def add_step(self, frame: dict) -> None:
        """frame: {key: value of shape spec.shape} for every schema key (scalars for shape () keys)."""
        self._check_active()
        step = validate_frame(self._features, frame)
        for k, v in step.items():
            self._buf[k].append(v)
        self._n_buffered += 1
        if self._n_buffered >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if not self._n_buffered:
            return
        cols = {k: np.stack(v) for k, v in self._buf.items()}
        self.store._write_steps(cols, self._start + self._n_flushed)
        self._n_flushed += self._n_buffered
        self._n_buffered = 0
        self._buf = {k: [] for k in self._features}

    def commit(self, **meta_updates) -> int:
        """Flush the remaining steps, then write the commit marker; returns the episode index.

        meta_updates: EpisodeMeta fields known only at the end (success, end_time_ns, interventions, notes...).
        """
        self._check_active()
        meta = self.meta.replace(**meta_updates)  # validates the updated fields
        if self.n_steps == 0:
            raise StoreError("the episode has no steps; nothing to commit (call discard())")
        try:
            self._flush()
            idx = self.store._commit_episode(meta, self._start, self.n_steps)
        except BaseException:
            log.error("commit of episode failed; its %d steps are discarded", self.n_steps)
            self.discard()
            raise
        self._finish()
        return idx

    def discard(self) -> None:
        """Drop this episode: buffered steps are forgotten, flushed steps truncated back. Idempotent."""
        if self._done:
            return
        self._buf = {k: [] for k in self._features}
        self._n_buffered = 0
        try:
            if self._n_flushed and not self.store._closed:
                self.store._discard_uncommitted()
        finally:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        if self.store._active_writer is self:
            self.store._active_writer = None

    def _check_active(self) -> None:
        if self._done:
            raise StoreError("this EpisodeWriter already committed or discarded its episode; create a new one")
        self.store._check_open()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Leaving the block without commit() (an exception, an early return) must not leave a tail behind.
        if not self._done:
            self.discard()
