"""EpisodeWriter: incremental episode recording for the recorder (steps arrive one at a time at 5-30 Hz).

    caller thread (recorder callback)                 flusher thread (owned by the writer)
    add_step(frame) ─► validate + copy ─► batch ──(batch reaches a multiple of flush_every steps)──►
                                                       queue ─► np.stack ─► data/<key>[a : b]   (past the committed end)
    commit(**meta)  ─► hand off the last partial batch ─► wait for the flusher ─► stop it ─►
                       fsync ─► meta/episode_stats + episode_info rows ─► meta/episode_ends (commit marker, LAST)
    discard()       ─► stop the flusher (in-flight write finishes) ─► truncate data/<key> to the committed end

Why a background flusher: compressing and writing one 64-frame shard of two 480x640 cameras takes ~1-2 s on
the recording machine; done in add_step it stalled the 30 Hz control loop for that long
(benchmarks/results/store.md). add_step now only validates and copies the frame (~1 ms).

Why flush boundaries are multiples of flush_every in *absolute* step index (default: the image shard length,
trajectory.IMAGE_FRAMES_PER_SHARD): a shard file is rewritten whole whenever any frame in it changes, so a
flush that ends mid-shard makes the next flush rewrite that shard again (read + decode + re-encode). Aligned
flushes write every full shard exactly once; only the episode's first and last shards are partial.

Memory is bounded: at most max_buffered_steps steps (min of max_buffered_s at the store's control rate and
max_buffered_bytes) wait in RAM for the disk. When the disk cannot keep up, a step that does not fit is
dropped, counted (n_dropped_steps) and logged as an error, and commit() raises WriterOverrunError naming the
fix: an episode with a hole in time must not be trained on. Steps are never dropped silently and the buffer
never grows past its bound.

Errors of the flusher (disk full, read-only disk) are raised by the next add_step / commit / wait_flushed;
the episode is then discarded (committed episodes are never touched). Flushed steps stay invisible to
readers until commit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

import numpy as np

from robot_stack.store.schema import EpisodeMeta, StoreError, validate_frame
from robot_stack.store.trajectory import IMAGE_FRAMES_PER_SHARD, TrajectoryStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_S = 10.0  # 2 x 480x640 cameras at 30 Hz: ~550 MB; > 2 shards of 64 frames at 30 Hz
DEFAULT_MAX_BUFFERED_BYTES = 1 << 30
_LOG_EVERY_DROPS = 30  # after the first dropped step, one error line per this many more


class WriterOverrunError(StoreError):
    """The disk did not keep up with the recording: steps were dropped; the episode cannot be committed."""


class EpisodeWriter:
    """Writes one episode into a store opened in mode "a"; only one EpisodeWriter per store at a time.

    flush_every: steps per background write, aligned to multiples of it in absolute step index (None: the
        image shard length, or the largest power-of-two divisor of it that fits the buffer twice).
    max_buffered_s / max_buffered_bytes: bound on steps accepted but not yet written (RAM); a step beyond it
        is dropped and counted, and commit() raises WriterOverrunError.

    add_step / commit / discard are called from one thread (the recorder's); the flusher thread is internal.
    """

    def __init__(self, store: TrajectoryStore, meta: EpisodeMeta | dict, flush_every: int | None = None, *,
                 max_buffered_s: float = DEFAULT_MAX_BUFFERED_S,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES):
        store._require_writable()
        if store._active_writer is not None:
            raise StoreError(f"store {store.path} already has an open EpisodeWriter; commit or discard it first")
        features = store.schema.features
        step_bytes = sum(int(np.dtype(s.dtype).itemsize * math.prod(s.shape)) for s in features.values())
        limit_steps = int(max_buffered_bytes) // max(step_bytes, 1)
        if float(max_buffered_s) > 0 and store.schema.control_hz > 0:
            limit_steps = min(limit_steps, int(float(max_buffered_s) * store.schema.control_hz))
        if flush_every is None:
            # Two batches must fit: one being written while the next fills up.
            flush_every = IMAGE_FRAMES_PER_SHARD
            while flush_every > 1 and 2 * flush_every > limit_steps:
                flush_every //= 2
        if int(flush_every) < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if limit_steps < int(flush_every):
            raise ValueError(
                f"the write buffer holds {limit_steps} steps (max_buffered_s={max_buffered_s} at "
                f"{store.schema.control_hz} Hz, max_buffered_bytes={max_buffered_bytes} at {step_bytes} B/step), "
                f"fewer than one flush of flush_every={flush_every} steps: raise max_buffered_s/max_buffered_bytes "
                "or lower flush_every")
        self.store = store
        self.meta = EpisodeMeta.from_any(meta)
        if self.meta.start_time_ns is None:
            self.meta.start_time_ns = time.time_ns()
        self.flush_every = int(flush_every)
        self.max_buffered_steps = limit_steps
        self.max_buffered_s = float(max_buffered_s)
        self.max_buffered_bytes = int(max_buffered_bytes)
        self.step_bytes = step_bytes
        self.n_dropped_steps = 0  # steps refused because the buffer was full (the disk did not keep up)
        self.max_buffered_seen = 0  # high-water mark of buffered steps (for monitoring and the benchmark)
        self._features = features
        self._start = store.n_steps  # this episode's first step in the flat arrays
        self._batch: list[dict[str, np.ndarray]] = []  # steps of the batch still filling up (caller thread)
        self._n_added = 0  # steps accepted
        # Shared with the flusher, guarded by _cv:
        self._cv = threading.Condition()
        self._queue: deque[tuple[int, list[dict[str, np.ndarray]]]] = deque()  # (first step, steps)
        self._n_unwritten = 0  # accepted steps not yet written: batch + queue + in flight
        self._n_written = 0
        self._in_flight = False
        self._n_handed = 0  # steps handed to the flusher (something past the end may exist on disk)
        self._error: BaseException | None = None
        self._stop = False
        self._done = False
        store._active_writer = self
        self._thread = threading.Thread(target=self._flusher, name=f"store-flush:{store.path.name}", daemon=True)
        self._thread.start()

    @property
    def n_steps(self) -> int:
        """Steps accepted so far (written + buffered)."""
        return self._n_added

    @property
    def buffered_steps(self) -> int:
        """Accepted steps not yet written to disk (the RAM the writer holds, in steps)."""
        with self._cv:
            return self._n_unwritten

    # ------------------------------------------------------------------ caller thread
    def add_step(self, frame: dict) -> bool:
        """frame: {key: value of shape spec.shape} for every schema key (scalars for shape () keys).

        Returns True when the step was buffered, False when it was dropped because the buffer is full (the disk
        is not keeping up; counted in n_dropped_steps, logged, and commit() will raise). Never waits for disk
        I/O. Raises the flusher's error (e.g. disk full) if a background write failed; the episode is then
        discarded."""
        self._check_active()
        self._raise_flusher_error()
        step = validate_frame(self._features, frame)
        with self._cv:
            if self._n_unwritten >= self.max_buffered_steps:
                self.n_dropped_steps += 1
                dropped = self.n_dropped_steps
            else:
                dropped = 0
                self._batch.append(step)
                self._n_added += 1
                self._n_unwritten += 1
                self.max_buffered_seen = max(self.max_buffered_seen, self._n_unwritten)
                if (self._start + self._n_added) % self.flush_every == 0:
                    self._hand_off_locked()
        if dropped:
            if dropped == 1 or dropped % _LOG_EVERY_DROPS == 0:
                log.error("store %s: the disk is not keeping up with the recording: %d step(s) dropped so far "
                          "(buffer full: %d steps = max_buffered_s %.1f / max_buffered_bytes %d); this episode "
                          "will not commit. %s", self.store.path, dropped, self.max_buffered_steps,
                          self.max_buffered_s, self.max_buffered_bytes, _OVERRUN_FIX)
            return False
        return True

    def _hand_off_locked(self) -> None:
        if self._batch:
            first = self._start + self._n_added - len(self._batch)
            self._queue.append((first, self._batch))
            self._n_handed += len(self._batch)
            self._batch = []
            self._cv.notify_all()

    def wait_flushed(self) -> None:
        """Block until every step handed to the flusher is written (the batch still filling up stays in RAM);
        raises the flusher's error, if any. For tests and for callers that want a sync point; not needed
        before commit()."""
        self._check_active()
        with self._cv:
            while (self._queue or self._in_flight) and self._error is None:
                self._cv.wait()
        self._raise_flusher_error()

    def commit(self, **meta_updates) -> int:
        """Write the remaining steps, wait for the flusher, then write the commit marker; returns the episode
        index. On any error the episode is discarded (committed episodes are untouched) and the error raised.

        meta_updates: EpisodeMeta fields known only at the end (success, end_time_ns, interventions, notes...).
        """
        self._check_active()
        meta = self.meta.replace(**meta_updates)  # validates the updated fields
        if self.n_steps == 0 and not self.n_dropped_steps:
            raise StoreError("the episode has no steps; nothing to commit (call discard())")
        try:
            if self.n_dropped_steps:
                raise WriterOverrunError(
                    f"store {self.store.path}: {self.n_dropped_steps} of {self.n_steps + self.n_dropped_steps} "
                    f"steps were dropped because the disk did not keep up (write buffer of {self.max_buffered_steps} "
                    "steps was full); the episode has holes in time and is discarded. " + _OVERRUN_FIX)
            with self._cv:
                self._hand_off_locked()
            self.wait_flushed()
            self._stop_flusher(abandon=False)
            idx = self.store._commit_episode(meta, self._start, self.n_steps)
        except BaseException:
            log.error("commit of episode failed; its %d steps are discarded", self.n_steps)
            self._discard_best_effort()
            raise
        self._finish()
        return idx

    def discard(self) -> None:
        """Drop this episode: buffered steps are forgotten, written ones truncated back. Idempotent."""
        if self._done:
            return
        try:
            self._stop_flusher(abandon=True)
            if self._n_handed and not self.store._closed:
                self.store._discard_uncommitted()
        finally:
            self._finish()

    def _discard_best_effort(self) -> None:
        """discard() after an error: on a full disk the truncation can fail too; the next open in mode "a"
        cuts back then, so log instead of hiding the original error."""
        try:
            self.discard()
        except Exception as e:  # noqa: BLE001 - the original error is the one the caller must see
            log.error("could not cut back the uncommitted steps of %s (%r); reopening the store in mode 'a' "
                      "will (nothing committed is affected)", self.store.path, e)

    def _raise_flusher_error(self) -> None:
        with self._cv:
            err = self._error
        if err is None:
            return
        self._discard_best_effort()
        if isinstance(err, StoreError):
            raise err
        raise StoreError(f"background write of episode steps to {self.store.path} failed ({err!r}); the episode "
                         "is discarded, committed episodes are intact: fix the cause and record again") from err

    def _stop_flusher(self, abandon: bool) -> None:
        with self._cv:
            self._stop = True
            if abandon:
                self._queue.clear()
                self._batch = []
            self._cv.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()  # waits for an in-flight write: truncating under it would race

    def _finish(self) -> None:
        self._done = True
        self._batch = []
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

    # ------------------------------------------------------------------ flusher thread
    def _flusher(self) -> None:
        """Write queued batches in order (one thread: the arrays only ever grow at the end, contiguously)."""
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue:  # stopped, nothing left to write
                    return
                first, steps = self._queue.popleft()
                self._in_flight = True
            try:
                cols = {k: np.stack([s[k] for s in steps]) for k in self._features}
                del steps  # the stacked copy is what gets written; free the per-step copies early
                self.store._write_steps(cols, first)
            except BaseException as e:  # noqa: BLE001 - handed to the caller thread, which raises it
                log.error("background write to store %s failed: %s", self.store.path, e)
                with self._cv:
                    self._error = e
                    self._in_flight = False
                    self._queue.clear()
                    self._cv.notify_all()
                return
            with self._cv:
                n = len(cols[next(iter(cols))])
                self._n_written += n
                self._n_unwritten -= n
                self._in_flight = False
                self._cv.notify_all()


_OVERRUN_FIX = ("Fix: record this store with a compressed image codec (StoreSchema(image_codec='jpeg'), "
                "~20-36x less to write), put store= on a faster local disk, lower the camera resolution/rate, "
                "or raise EpisodeWriter(max_buffered_s=..., max_buffered_bytes=...) if the overrun was a short stall.")
