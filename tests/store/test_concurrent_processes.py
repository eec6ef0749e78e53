"""A learner PROCESS samples batches (refresh() between them) while a recorder PROCESS appends episodes to the
same store: new episodes appear to the learner, it never samples past a committed end, and every sampled
frame is exactly what the recorder wrote for that (episode, step)."""

from __future__ import annotations

import multiprocessing as mp

import concurrent_child
from store_data import make_schema

from robot_stack.store import TrajectoryStore

N_EPISODES = 12
SAFETY_WAIT_S = 120  # only so a hung child fails the test instead of hanging it


def test_learner_process_samples_while_recorder_process_appends(tmp_path):
    path = tmp_path / "s.zarr"
    TrajectoryStore.create(path, make_schema(), fsync=False).close()
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["zarr", "numpy", "robot_stack.store", "store_data", "concurrent_child"])
    started = ctx.Event()
    (rec_parent, rec_child), (learn_parent, learn_child) = ctx.Pipe(), ctx.Pipe()
    procs = [ctx.Process(target=concurrent_child.learner, args=(str(path), N_EPISODES, started, learn_child)),
             ctx.Process(target=concurrent_child.recorder, args=(str(path), N_EPISODES, started, rec_child))]
    for p in procs:
        p.start()
    try:
        results = {}
        for name, conn in (("recorder", rec_parent), ("learner", learn_parent)):
            assert conn.poll(SAFETY_WAIT_S), f"{name} process reported nothing"
            status, payload = conn.recv()
            assert status == "done", f"{name} process failed:\n{payload}"
            results[name] = payload
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    counts, checked = results["learner"]["counts"], results["learner"]["checked"]
    first_sampled = next(c for c in counts if c > 0)
    # the recorder holds episode 2 back until the learner has sampled, so the learner saw episodes appear
    assert first_sampled <= 2 and counts[-1] == N_EPISODES, counts
    assert counts == sorted(counts), "the committed episode table went backwards for the reader"
    assert checked >= 32
    final = TrajectoryStore.open(path)
    assert final.n_episodes == N_EPISODES
