"""Child processes for test_concurrent_processes.py (a module, so multiprocessing's forkserver can import it).

recorder: episode i is store_data.make_episode(i, episode_length(i)) with task f"ep{i}", written alternately
through EpisodeWriter (background flusher) and append_episode. learner: samples batches with the
TrajectorySampler, refresh()ing between batches, and checks every sampled (episode, t) against that
deterministic content. Both report over a pipe; the parent test asserts.
"""

from __future__ import annotations

import time
import traceback

import numpy as np
from store_data import make_episode

from robot_stack.store import EpisodeWriter, TrajectoryStore
from robot_stack.store.sampler import SamplerConfig, TrajectorySampler
from robot_stack.types import ACTION_KEY, STATE_KEY, image_key

SAFETY_WAIT_S = 60  # only so a broken store fails the test instead of hanging it


def episode_length(i: int) -> int:
    return 6 + (i * 7) % 30


def recorder(path: str, n_episodes: int, learner_started, conn) -> None:
    try:
        store = TrajectoryStore.open(path, mode="a", fsync=False)
        for i in range(n_episodes):
            # let the learner sample the first episodes, so that it sees the rest appear
            if i == 2 and not learner_started.wait(SAFETY_WAIT_S):
                raise RuntimeError("learner never started sampling")
            ep = make_episode(i, n_steps=episode_length(i))
            meta = {"task": f"ep{i}", "source": "sim", "success": bool(i % 3)}
            if i % 2:
                store.append_episode(ep, meta)
            else:
                w = EpisodeWriter(store, meta, flush_every=4)
                for t in range(len(ep[ACTION_KEY])):
                    w.add_step({k: v[t] for k, v in ep.items()})
                w.commit()
        store.close()
        conn.send(("done", n_episodes))
    except BaseException:  # noqa: BLE001 - reported to the parent test
        conn.send(("error", traceback.format_exc()))


def learner(path: str, n_episodes: int, learner_started, conn) -> None:
    try:
        store = TrajectoryStore.open(path, mode="r")
        smp = TrajectorySampler(store, SamplerConfig(n_obs_steps=2, action_horizon=3, seed=7,
                                                     cache_budget_bytes=200_000))  # small: re-reads happen
        cache = {}
        counts: list[int] = []
        n_checked = 0
        deadline = time.monotonic() + SAFETY_WAIT_S
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recorder's episodes never all appeared (saw {counts[-5:]})")
            smp.refresh()
            n = store.n_episodes
            counts.append(n)
            if smp.n_samples:
                b = smp.sample(32)
                ends = store.episode_ends
                for j in range(32):
                    e, t = int(b["episode"][j]), int(b["t"][j])
                    T = episode_length(e)
                    start = int(ends[e - 1]) if e else 0
                    # the sampled step lies inside a committed episode of exactly the length the recorder wrote
                    assert e < n and int(ends[e]) - start == T and 0 <= t < T, (e, t, T, ends)
                    assert start + t < int(ends[-1])
                    assert store.episode_meta(e).task == f"ep{e}"
                    want = cache.get(e) or cache.setdefault(e, make_episode(e, n_steps=T))
                    for k in (image_key("wrist"), image_key("scene"), STATE_KEY):
                        assert np.array_equal(b["obs"][k][j, 1], want[k][t]), (e, t, k)
                        assert np.array_equal(b["obs"][k][j, 0], want[k][max(t - 1, 0)]), (e, t, k)
                    assert np.array_equal(b["action"][j, 0], want[ACTION_KEY][t]), (e, t)
                    n_checked += 1
                learner_started.set()
            if n >= n_episodes:
                break
        conn.send(("done", {"counts": counts, "checked": n_checked}))
    except BaseException:  # noqa: BLE001 - reported to the parent test
        conn.send(("error", traceback.format_exc()))
