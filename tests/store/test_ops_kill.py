"""Kill tests for whole-store operations (review C2, C3; tests T24, T25, T26).

A child process runs compact or merge and is SIGKILLed at a named point (during the copy, with the copy
done, between the two renames, half-way through deleting the old copy; after some merged episodes). The
parent then does what an operator does: open the store, follow the printed instruction if it refuses, re-run
the operation. Every committed, non-excluded episode must survive byte for byte, no episode_id may appear
twice, and a clean re-run leaves no hidden copies behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import re
import shutil
import signal
import threading
from pathlib import Path

import ops_child
import pytest
from store_data import make_episode, make_schema

from robot_stack.store import StoreError, TrajectoryStore, faults
from robot_stack.store.ops import compact, merge


@pytest.fixture(scope="module")
def ctx():
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(["zarr", "numpy", "robot_stack.store", "robot_stack.store.ops", "ops_child"])
    return c


def _fill(path: Path, n: int, start: int = 0) -> dict[str, str]:
    """n episodes; returns {episode_id: sha256 of its bytes}."""
    s = TrajectoryStore.create(path, make_schema(), fsync=False)
    for i in range(start, start + n):
        s.append_episode(make_episode(i, n_steps=5 + i % 7), {"task": f"ep{i}", "source": "sim"})
    out = {s.episode_meta(i).episode_id: _sha(s.get_episode(i)) for i in range(s.n_episodes)}
    s.close()
    return out


def _sha(ep) -> str:
    h = hashlib.sha256()
    for k in sorted(ep):
        h.update(ep[k].tobytes())
    return h.hexdigest()


def _contents(path: Path) -> tuple[dict[str, str], set[str]]:
    """({episode_id: sha} of every committed episode, excluded ids); asserts ids are unique."""
    s = TrajectoryStore.open(path, mode="a")
    try:
        ids = [s.episode_meta(i).episode_id for i in range(s.n_episodes)]
        assert len(ids) == len(set(ids)), f"duplicate episode_id in {path}: {ids}"
        return {e: _sha(s.get_episode(i)) for i, e in enumerate(ids)}, {ids[i] for i in s.excluded_episodes()}
    finally:
        s.close()


def _run_until(ctx, target, args, phase: str) -> None:
    parent, child = ctx.Pipe()
    p = ctx.Process(target=target, args=(*args, child))
    p.start()
    try:
        msg = parent.recv() if parent.poll(120) else None  # generous: only a hung child ends this wait
        assert msg == ("at", phase), f"child did not reach {phase}: {msg} (exit code {p.exitcode})"
    finally:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join(60)
    assert p.exitcode == -signal.SIGKILL, p.exitcode


def _open_or_follow_instruction(path: Path) -> None:
    """What an operator does after a crash: open the store; if it refuses, run the `mv` it prints."""
    try:
        TrajectoryStore.open(path, mode="a").close()
    except StoreError as e:
        m = re.search(r"\(mv (\S+) (\S+)\)", str(e))
        assert m, f"store refused to open without an instruction: {e}"
        src, dst = m.groups()
        assert Path(dst) == path
        shutil.move(src, dst)
        TrajectoryStore.open(path, mode="a").close()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_sigkill_compact_at_every_point_then_follow_the_instruction(tmp_path, ctx):
    path = tmp_path / "s.zarr"
    committed = _fill(path, 8)
    ids = list(committed)
    s = TrajectoryStore.open(path, mode="r")
    s.exclude([1, 5])
    s.close()
    excluded = {ids[1], ids[5]}
    expected = {e: h for e, h in committed.items() if e not in excluded}
    # In sequence on one store, so leftovers of one kill meet the next one (the review's C2 scenario: a delete
    # killed half-way, then a later compaction killed between its renames).
    plan = [("compact_copy", 1), ("compact_copy", 4), ("compact_swap_ready", 1), ("compact_rmtree", 1),
            ("compact_renamed", 1), ("compact_rmtree", 1), ("compact_renamed", 1)]
    assert {ph for ph, _ in plan} == set(faults.COMPACT_PHASES)
    for phase, nth in plan:
        _run_until(ctx, ops_child.run_compact, (str(path), phase, nth), phase)
        _open_or_follow_instruction(path)
        got, got_excluded = _contents(path)
        # Before the swap the original (with its tombstones) is back; after it, the compacted copy.
        assert {e: h for e, h in got.items() if e not in got_excluded} == expected, (phase, nth)
        assert set(got) - got_excluded == set(expected)
    r = compact(path, fsync=False)
    assert r["kept"] == len(expected) and r["dropped"] == 0
    assert _contents(path) == (expected, set())
    assert _siblings(path) == [], "a clean compaction must leave no hidden copies"


def test_exclusions_made_during_compaction_survive(tmp_path):
    path = tmp_path / "s.zarr"
    ids = list(_fill(path, 6))
    blocked: list[threading.Thread] = []

    def hook(phase):
        if phase == "compact_copy" and not blocked:
            # An operator excludes episode 2 while the copy runs (allowed: edits have their own lock).
            r = TrajectoryStore.open(path, mode="r")
            r.exclude([2])
            r.close()
            blocked.append(None)
        elif phase == "compact_swap_ready":
            # ... and episode 4 just as the swap starts: the edit waits for the swap and lands in the new store.
            def late():
                r = TrajectoryStore.open(path, mode="r")
                r.exclude([4])
                r.close()
            t = threading.Thread(target=late)
            t.start()
            t.join(0.5)
            assert t.is_alive(), "the exclusion did not wait for the swap (compact must hold the edits lock)"
            blocked.append(t)

    faults.hook = hook
    try:
        compact(path, fsync=False)
    finally:
        faults.hook = None
    blocked[-1].join(30)
    s = TrajectoryStore.open(path, mode="r")
    try:
        assert s.n_episodes == 6  # nothing was excluded when the copy started
        assert {s.episode_uid(i) for i in s.excluded_episodes()} == {ids[2], ids[4]}
    finally:
        s.close()
    r = compact(path, fsync=False)
    assert r["dropped"] == 2


def test_sigkill_merge_then_rerun_has_no_duplicates(tmp_path, ctx):
    a, b, dst = tmp_path / "a.zarr", tmp_path / "b.zarr", tmp_path / "m.zarr"
    expected = {**_fill(a, 4), **_fill(b, 3, start=4)}
    for nth, total in ((2, 2), (3, 5)):  # killed in the first source, then (re-run) in the second
        _run_until(ctx, ops_child.run_merge, (str(dst), [str(a), str(b)], "merge_episode", nth), "merge_episode")
        got, _ = _contents(dst)
        assert len(got) == total and all(expected[e] == h for e, h in got.items())
    r = merge(dst, [a, b], fsync=False)
    assert r["added"] == 2 and r["skipped_duplicates"] == 5
    assert _contents(dst) == (expected, set())
    with pytest.raises(StoreError, match="into itself"):
        link = tmp_path / "link.zarr"
        link.symlink_to(dst, target_is_directory=True)
        merge(dst, [a, link], fsync=False)
