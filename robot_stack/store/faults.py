"""Named crash points inside the commit protocol, for the kill tests (tests/store/test_crash_kill.py).

The writer calls `crash_point(phase)` at each step of the protocol. Normally that is one dict lookup. A test
makes the writer stop *exactly* there and then SIGKILLs it, either in-process (set `faults.hook`) or from
the environment of a child process:

    ROBOT_STACK_STORE_CRASH_AT=<phase>[@<n>]   on the n-th (default 1st) time <phase> is reached, print
                                               "CRASH_POINT <phase>" to stderr and sleep until killed
Phases, in protocol order: data_written (after each flush of steps past the end), data_fsynced, stats_row,
meta_row, ends_resized (episode_ends zarr.json grown, its chunk not yet written), committed.
Whole-store operations (store/ops.py) have their own: COMPACT_PHASES and MERGE_PHASES below.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

PHASES = ("data_written", "data_fsynced", "stats_row", "meta_row", "ends_resized", "committed")
# compact_copy: after each episode copied into .compact-*; compact_swap_ready: copy complete, edits carried
# over, nothing renamed; compact_renamed: between the two renames (the store path is missing);
# compact_rmtree: the old copy is renamed to .trash-* and partly deleted.
COMPACT_PHASES = ("compact_copy", "compact_swap_ready", "compact_renamed", "compact_rmtree")
MERGE_PHASES = ("merge_episode",)  # after each episode appended to the destination
ENV = "ROBOT_STACK_STORE_CRASH_AT"

hook: Callable[[str], None] | None = None
_hits: dict[str, int] = {}


def crash_point(phase: str) -> None:
    if hook is not None:
        hook(phase)
        return
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition("@")
    if name != phase:
        return
    _hits[phase] = _hits.get(phase, 0) + 1
    if _hits[phase] == int(nth or 1):
        print(f"CRASH_POINT {phase}", file=sys.stderr, flush=True)
        while True:  # wait for the test's SIGKILL
            time.sleep(3600)
