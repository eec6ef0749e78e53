"""EpisodeWriter's background flusher: add_step never waits for a write in progress, flusher errors surface on
the caller's next call with the fix, and a full buffer drops + counts + refuses the commit instead of growing.

The flusher is held inside a write with the fault hook (faults.hook at "data_written", reached in the flusher
thread after each batch is written), so every assertion is about order of events, never about durations.
"""

from __future__ import annotations

import errno
import logging
import threading

import numpy as np
import pytest
import zarr
from store_data import make_episode

from robot_stack.store import EpisodeWriter, StoreError, TrajectoryStore, faults
from robot_stack.store.writer import WriterOverrunError
from robot_stack.types import ACTION_KEY

META = {"task": "stack the cups", "source": "teleop"}
HOOK_WAIT_S = 60  # only a safety net so a broken writer fails the test instead of hanging it


class HeldFlusher:
    """A fault hook that parks the flusher thread at "data_written" until released."""

    def __init__(self, raise_exc: BaseException | None = None):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.raise_exc = raise_exc
        self.hits = 0
        self.timed_out = False
        self.thread_names: list[str] = []

    def __call__(self, phase: str) -> None:
        if phase != "data_written":
            return
        self.hits += 1
        self.thread_names.append(threading.current_thread().name)
        if self.raise_exc is not None:
            raise self.raise_exc
        self.entered.set()
        if not self.release.wait(HOOK_WAIT_S):
            self.timed_out = True


@pytest.fixture
def hook(monkeypatch):
    def install(h):
        monkeypatch.setattr(faults, "hook", h)
        return h
    return install


def _steps(ep, a, b):
    return [{k: v[t] for k, v in ep.items()} for t in range(a, b)]


def _on_disk(path) -> int:
    return zarr.open_group(str(path), mode="r")[f"data/{ACTION_KEY}"].shape[0]


def test_add_step_returns_while_a_flush_is_in_progress(tmp_path, schema, hook):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema, fsync=False)
    held = hook(HeldFlusher())
    ep = make_episode(1, n_steps=20)
    w = EpisodeWriter(store, META, flush_every=4)
    for s in _steps(ep, 0, 4):
        assert w.add_step(s)
    assert held.entered.wait(HOOK_WAIT_S), "the flusher never wrote the first batch"
    # The flusher is parked inside its write of steps 0..3. If add_step waited for it, this would hang until
    # the hook's safety timeout and the assertions below would fail.
    for s in _steps(ep, 4, 19):
        assert w.add_step(s)
    assert not held.release.is_set() and not held.timed_out
    assert held.thread_names == [w._thread.name] and w._thread is not threading.current_thread()
    assert w.n_steps == 19 and w.buffered_steps == 19  # the in-flight batch counts until it is done
    assert _on_disk(path) == 4  # only the batch in flight reached the arrays
    held.release.set()
    w.add_step(_steps(ep, 19, 20)[0])
    assert w.commit(success=True) == 0  # waits for the flusher, then writes the marker
    assert held.hits == 5  # aligned batches 0-3, 4-7, 8-11, 12-15, 16-19
    got = store.get_episode(0)
    for k, v in ep.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    store.close()


def test_flushes_are_aligned_to_the_shard_length_by_default(tmp_path, schema, hook):
    from robot_stack.store.trajectory import IMAGE_FRAMES_PER_SHARD

    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    store.append_episode(make_episode(0, n_steps=10), META)  # the next episode starts mid-shard, at step 10
    starts: list[int] = []
    real = store._write_steps
    store._write_steps = lambda cols, start: (starts.append((start, len(cols[ACTION_KEY]))), real(cols, start))[1]
    ep = make_episode(2, n_steps=150)
    w = EpisodeWriter(store, META, max_buffered_s=20.0)  # 200 steps at 10 Hz: two shards fit
    assert w.flush_every == IMAGE_FRAMES_PER_SHARD
    for s in _steps(ep, 0, 150):
        w.add_step(s)
    w.commit()
    # first batch fills the shard the previous episode started, then whole shards, then the tail at commit
    assert starts == [(10, 54), (64, 64), (128, 32)]
    np.testing.assert_array_equal(store.get_episode(1)[ACTION_KEY], ep[ACTION_KEY])
    store.close()


def test_flusher_disk_full_surfaces_with_fix_and_committed_data_is_intact(tmp_path, schema, hook):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema, fsync=False)
    ep0 = make_episode(0, n_steps=12)
    store.append_episode(ep0, META)
    hook(HeldFlusher(raise_exc=OSError(errno.ENOSPC, "No space left on device")))
    ep = make_episode(1, n_steps=30)
    w = EpisodeWriter(store, META, flush_every=4)
    for s in _steps(ep, 0, 4):  # steps 12..15: one aligned batch -> the flusher writes it and hits ENOSPC
        w.add_step(s)
    w._thread.join(HOOK_WAIT_S)  # the flusher thread ends after recording its error
    assert not w._thread.is_alive()
    with pytest.raises(StoreError, match=r"disk full.*committed episodes are intact.*free space"):
        w.add_step(_steps(ep, 4, 5)[0])  # the NEXT call surfaces it
    with pytest.raises(StoreError, match="already committed or discarded"):
        w.commit()  # the episode was discarded with the error
    assert store.n_episodes == 1 and _on_disk(path) == 12  # the uncommitted tail was cut back
    faults.hook = None
    store.close()
    s2 = TrajectoryStore.open(path, mode="a")
    assert s2.recovery is None and s2.n_episodes == 1
    for k, v in ep0.items():
        np.testing.assert_array_equal(s2.get_episode(0)[k], v, err_msg=k)
    assert s2.append_episode(make_episode(2, n_steps=5), META) == 1  # and recording goes on
    s2.close()


def test_flusher_error_surfaces_on_commit(tmp_path, schema, hook):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    hook(HeldFlusher(raise_exc=OSError(errno.ENOSPC, "No space left on device")))
    w = EpisodeWriter(store, META, flush_every=4)
    for s in _steps(make_episode(3, n_steps=6), 0, 6):
        w.add_step(s)
    with pytest.raises(StoreError, match=r"disk full.*free space"):
        w.commit()
    assert store.n_episodes == 0 and store._active_writer is None
    store.close()


def test_full_buffer_drops_counts_logs_and_refuses_commit(tmp_path, schema, hook, caplog):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema, fsync=False)
    held = hook(HeldFlusher())
    step_bytes = sum(v[0].nbytes for v in make_episode(0, n_steps=1).values())
    w = EpisodeWriter(store, META, flush_every=4, max_buffered_bytes=10 * step_bytes)
    assert w.max_buffered_steps == 10
    ep = make_episode(4, n_steps=16)
    results = [w.add_step(s) for s in _steps(ep, 0, 4)]
    assert held.entered.wait(HOOK_WAIT_S)
    with caplog.at_level(logging.ERROR, logger="robot_stack.store.writer"):
        results += [w.add_step(s) for s in _steps(ep, 4, 16)]  # the "disk" is stuck: the buffer fills up
    assert results == [True] * 10 + [False] * 6
    assert w.n_dropped_steps == 6 and w.buffered_steps == 10 and w.max_buffered_seen == 10
    assert "disk is not keeping up" in caplog.text and "image_codec='jpeg'" in caplog.text
    held.release.set()
    with pytest.raises(WriterOverrunError, match=r"6 of 16 steps were dropped.*image_codec='jpeg'.*max_buffered_s"):
        w.commit()
    assert store.n_episodes == 0 and _on_disk(path) == 0  # discarded and cut back
    faults.hook = None
    w2 = EpisodeWriter(store, META, flush_every=4)
    for s in _steps(ep, 0, 16):
        assert w2.add_step(s)
    assert w2.commit() == 0
    store.close()


def test_buffer_smaller_than_one_flush_is_refused(tmp_path, schema):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    with pytest.raises(ValueError, match="raise max_buffered_s"):
        EpisodeWriter(store, META, flush_every=64, max_buffered_s=1.0)  # 10 Hz store: 10 steps < 64
    w = EpisodeWriter(store, META, max_buffered_s=1.0)  # default flush size shrinks to fit twice
    assert w.flush_every == 4 and w.max_buffered_steps == 10
    w.discard()
    store.close()
