"""Child writer for test_crash_kill.py (a module, so multiprocessing's forkserver can import it).

Episode i is store_data.make_episode(i, n_steps) with task f"ep{i}". After each commit the writer appends
`{"i": i, "sha": {key: sha256 of the bytes}}` to a side file: written AFTER the commit returned, so every line
names an episode that was committed; the parent checks those hashes survive every later kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from store_data import make_episode, make_schema

from robot_stack.store import EpisodeWriter, TrajectoryStore, faults


def episode_hashes(ep: dict) -> dict[str, str]:
    return {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in sorted(ep.items())}


def run(path: str, side: str, crash_at: str | None, delay_s: float, conn) -> None:
    if crash_at:
        phase, nth = crash_at.split("@")
        hits = {"n": 0}

        def hook(p: str) -> None:
            if p == phase:
                hits["n"] += 1
                if hits["n"] == int(nth):
                    conn.send(("at", p))
                    time.sleep(3600)  # the parent SIGKILLs us here

        faults.hook = hook
    store = TrajectoryStore.open_or_create(path, make_schema(), fsync=False)
    conn.send(("ready", store.n_episodes, str(store.recovery) if store.recovery else ""))
    i = store.n_episodes
    t0 = time.monotonic()
    while True:
        n_steps = 6 + (i * 7) % 30
        ep = make_episode(i, n_steps=n_steps)
        meta = {"task": f"ep{i}", "source": "sim"}
        if i % 2:
            store.append_episode(ep, meta)
        else:
            w = EpisodeWriter(store, meta, flush_every=4)
            for t in range(n_steps):
                w.add_step({k: v[t] for k, v in ep.items()})
            w.commit(success=True)
        with open(side, "a") as f:  # after the commit: the side file only ever names committed episodes
            f.write(json.dumps({"i": i, "sha": episode_hashes(ep)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        i += 1
        if not crash_at and time.monotonic() - t0 > delay_s + 5:
            return
