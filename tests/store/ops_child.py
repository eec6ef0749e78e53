"""Child processes for test_ops_kill.py (a module, so multiprocessing's forkserver can import it): run a
compact or a merge and stop at a named crash point (robot_stack.store.faults) until the parent SIGKILLs."""

from __future__ import annotations

import time

from robot_stack.store import faults
from robot_stack.store.ops import compact, merge


def _stop_at(phase: str, nth: int, conn) -> None:
    hits = {"n": 0}

    def hook(p: str) -> None:
        if p == phase:
            hits["n"] += 1
            if hits["n"] == nth:
                conn.send(("at", p))
                time.sleep(3600)  # the parent SIGKILLs us here

    faults.hook = hook


def run_compact(path: str, phase: str, nth: int, conn) -> None:
    _stop_at(phase, nth, conn)
    compact(path, fsync=False)
    conn.send(("done", None))


def run_merge(dst: str, srcs: list[str], phase: str, nth: int, conn) -> None:
    _stop_at(phase, nth, conn)
    merge(dst, srcs, fsync=False)
    conn.send(("done", None))
