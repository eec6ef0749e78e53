"""Crash safety on a real store: manual torn writes, SIGKILLed writer processes, and a reader process tailing
a live writer that must never see a partial episode."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_data import make_episode

from robot_stack.store import EpisodeWriter, StoreLockedError, TrajectoryStore
from robot_stack.types import ACTION_KEY, image_key

HERE = Path(__file__).parent
META = {"task": "wipe the table", "source": "sim"}

# The child writer: episode i is make_episode(i) with task f"ep{i}", so any reader can check any episode.
WRITER = """
import sys, time
sys.path.insert(0, {here!r})
from store_data import make_episode, make_schema
from robot_stack.store import EpisodeWriter, TrajectoryStore
store = TrajectoryStore.open_or_create({path!r}, make_schema(), fsync=False)
mode = {mode!r}
i = store.n_episodes
if mode == "loop":  # commit episodes as fast as possible, half of them incrementally
    print("READY", flush=True)
    while True:
        ep = make_episode(i)
        if i % 2:
            store.append_episode(ep, {{"task": f"ep{{i}}", "source": "sim"}})
        else:
            w = EpisodeWriter(store, {{"task": f"ep{{i}}", "source": "sim"}}, flush_every=7)
            for t in range(len(ep["action"])):
                w.add_step({{k: v[t] for k, v in ep.items()}})
            w.commit(success=True)
        i += 1
else:  # "midway": 2 committed episodes, then a third flushed past the end and never committed
    for _ in range(2):
        store.append_episode(make_episode(i), {{"task": f"ep{{i}}", "source": "sim"}}); i += 1
    ep = make_episode(i, n_steps=40)
    w = EpisodeWriter(store, {{"task": f"ep{{i}}", "source": "sim"}}, flush_every=8)
    for t in range(37):
        w.add_step({{k: v[t] for k, v in ep.items()}})
    w.wait_flushed()  # the flusher has written every full batch of 8 (aligned to absolute step multiples of 8)
    print("READY", flush=True)
    time.sleep(60)
"""


def _spawn_writer(path: Path, mode: str) -> subprocess.Popen:
    code = WRITER.format(here=str(HERE), path=str(path), mode=mode)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "READY":
        p.kill()
        raise AssertionError(f"writer did not start: {line!r} {p.stderr.read()}")
    return p


def _kill(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL


def _check_committed(store: TrajectoryStore, keys=None) -> None:
    """Every visible episode is complete and exactly what the writer wrote (episode i = make_episode(i))."""
    for i in range(store.n_episodes):
        assert store.episode_meta(i).task == f"ep{i}"
        want = make_episode(i)
        got = store.get_episode(i, keys=keys)
        for k in got:
            assert got[k].tobytes() == want[k].tobytes(), (i, k)


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def _append_episodes(store: TrajectoryStore, indices) -> None:
    for i in indices:
        assert store.append_episode(make_episode(i), {"task": f"ep{i}", "source": "sim"}) == i


def test_manual_torn_write_is_cut_back_and_reported(tmp_path, schema, caplog):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema, fsync=False)
    _append_episodes(store, range(2))
    end = store.n_steps
    store.close()

    # Simulate a writer that died inside the commit protocol: data written past the end, a metadata row,
    # and episode_ends already resized (zarr.json) but its chunk not yet written (entry reads -1).
    g = zarr.open_group(str(path), mode="r+")
    for key in schema.features:
        a = g[f"data/{key}"]
        a.resize((end + 9, *a.shape[1:]))
        a[end:] = make_episode(99, n_steps=9)[key]
    info = g["meta/episode_info"]
    info.resize((3,))
    info[2] = '{"task": "ep2", "source": "sim"}'
    g["meta/episode_ends"].resize((3,))
    (path / "data" / ACTION_KEY / "c" / "0.deadbeef.partial").write_bytes(b"half a chunk")

    # A reader never sees the torn episode and never modifies the store.
    before = _snapshot(path)
    r = TrajectoryStore.open(path, mode="r")
    assert r.n_episodes == 2 and r.n_steps == end and r.refresh() == 0
    _check_committed(r)
    assert _snapshot(path) == before

    with caplog.at_level(logging.WARNING, logger="robot_stack.store"):
        store = TrajectoryStore.open(path, mode="a")
    rep = store.recovery
    assert rep is not None and rep.committed_episodes == 2 and rep.committed_steps == end
    assert rep.dropped_steps[ACTION_KEY] == 9 and rep.dropped_steps[image_key("wrist")] == 9
    assert rep.dropped_episode_entries == 1 and rep.dropped_meta_rows == 1 and rep.removed_temp_files == 1
    assert any("dropped uncommitted steps" in r.getMessage() for r in caplog.records)
    for key in schema.features:
        assert g[f"data/{key}"].shape[0] == end
    assert g["meta/episode_ends"].shape == (2,)
    _check_committed(store)
    _append_episodes(store, [2])  # appending continues right after the committed end
    _check_committed(store)
    store.close()
    assert TrajectoryStore.open(path, mode="a").recovery is None  # clean now


def test_sigkill_mid_episode_then_recover_and_continue(tmp_path):
    path = tmp_path / "s.zarr"
    p = _spawn_writer(path, "midway")
    try:
        with pytest.raises(StoreLockedError, match=f"pid {p.pid}"):
            TrajectoryStore.open(path, mode="a")
        r = TrajectoryStore.open(path, mode="r")
        assert r.n_episodes == 2
    finally:
        _kill(p)
    # The killed writer flushed its 37 steps up to the last multiple of 8 in absolute step index.
    flushed = (r.n_steps + 37) // 8 * 8 - r.n_steps
    assert flushed >= 30
    assert zarr.open_group(str(path), mode="r")[f"data/{ACTION_KEY}"].shape[0] == r.n_steps + flushed

    store = TrajectoryStore.open(path, mode="a")  # the lock died with the process
    assert store.recovery is not None
    assert set(store.recovery.dropped_steps.values()) == {flushed}
    assert store.n_episodes == 2 and store.n_steps == r.n_steps
    _check_committed(store)
    ep = make_episode(2)
    w = EpisodeWriter(store, {"task": "ep2", "source": "sim"}, flush_every=5)
    for t in range(len(ep[ACTION_KEY])):
        w.add_step({k: v[t] for k, v in ep.items()})
    assert w.commit() == 2
    store.close()
    assert r.refresh() == 1
    _check_committed(r)


def test_reader_process_tails_live_writer_and_survives_sigkill(tmp_path):
    """The reader (this process) refreshes while a writer process commits episodes in a loop; every visible
    episode must be complete; then the writer is SIGKILLed at an arbitrary point and the store recovers."""
    path = tmp_path / "s.zarr"
    p = _spawn_writer(path, "loop")
    try:
        reader = TrajectoryStore.open(path, mode="r")
        seen, refreshes = 0, 0
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and seen < 5:
            new = reader.refresh()
            refreshes += 1
            if new:
                # check the new episodes (low-dim + one camera keep the check quick)
                for i in range(seen, reader.n_episodes):
                    want = make_episode(i)
                    got = reader.get_episode(i, keys=[ACTION_KEY, image_key("wrist")])
                    assert reader.episode_meta(i).task == f"ep{i}"
                    for k, v in got.items():
                        assert v.tobytes() == want[k].tobytes(), (i, k)
                seen = reader.n_episodes
            with pytest.raises(IndexError):
                reader.read(ACTION_KEY, 0, reader.n_steps + 1)  # nothing past the committed end is readable
            time.sleep(0.01)
        assert seen >= 2, f"reader saw only {seen} episodes in {refreshes} refreshes"
    finally:
        _kill(p)

    store = TrajectoryStore.open(path, mode="a")
    assert store.n_episodes >= seen
    _check_committed(store)
    n = store.n_episodes
    _append_episodes(store, [n])
    store.close()
    reader.refresh()
    assert reader.n_episodes >= n + 1
    _check_committed(reader, keys=[ACTION_KEY, image_key("scene")])
    np.testing.assert_array_equal(reader.episode_ends, store.episode_ends)
