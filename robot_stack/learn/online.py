"""In-process online RL in a sim: the actor-learner loop of a practice session without ROS (the learning tests,
benchmarks/bench_learning.py, and any sim experiment that must be reproducible step for step).

    svc.open() ─► svc.train_offline()                    (offline pre-training; nothing when offline_steps = 0)
      └─► per round:  the learner's live policy acts in the sim (sampled actions, gripper decision held:
                      PolicyActor(stochastic=True)) for `episodes_per_round` episodes
                      ─► each is appended to the store as source "policy" (committed, like the recorder's)
                      ─► svc.online_round(store): the learner takes them in (MC returns on load) and spends its
                         update budget (utd_ratio per new transition) on offline/online mixed batches
                      ─► on_round(RoundResult) (evaluation, progress)

Unlike the threaded service (robot-stack learn, the learner node) the rounds alternate strictly, so a fixed seed
gives the same run; the ROS graph runs the same service and store with the two sides in separate processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_stack.learn.evaluate import PolicyActor, rollout
from robot_stack.types import ENV_STATE_KEY


@dataclass
class RoundResult:
    round: int
    episodes: int                 # online episodes collected so far
    transitions: int              # online transitions collected so far
    collected_successes: int      # successes among this round's (exploration) episodes
    updates: int                  # learner updates taken in this round
    step: int                     # learner step after the round
    wall_s: float


def run_online(svc: Any, sim: Any, task: str, store_path: str | Path, rounds: int, episodes_per_round: int,
               seed: int = 0, gripper_hold_steps: int = 5, source: str = "policy",
               on_round: Callable[[RoundResult], None] | None = None,
               make_actor: Callable[[Any], Any] | None = None) -> list[RoundResult]:
    """Offline phase (if any), then `rounds` collect → learn rounds; the service is opened and closed here.

    Episode seeds are 10_000_000 + seed·100_003 + i: disjoint from evaluation seeds (1_000_000 + i) and from the
    data generators' (seed·100_003 + i) for any seed below 90. make_actor(svc) -> the round's Actor; None = the
    learner's live policy sampling (PolicyActor(stochastic=True)); PA-RL acts through its selector instead."""
    from robot_stack.store import EpisodeMeta, TrajectoryStore

    store = svc.open()
    if store is None:
        raise RuntimeError(f"the learner stopped before it could read {store_path}")
    results: list[RoundResult] = []
    writer = None
    try:
        svc.train_offline()
        writer = TrajectoryStore.open(Path(store_path), mode="a")
        keys = set(writer.schema.features)
        episodes = transitions = 0
        for r in range(rounds):
            t0 = time.perf_counter()
            actor = make_actor(svc) if make_actor is not None else \
                PolicyActor(svc.policy, stochastic=True, gripper_hold_steps=gripper_hold_steps)
            ok = 0
            for _ in range(episodes_per_round):
                ep_seed = 10_000_000 + seed * 100_003 + episodes
                # Record every column the store has (object state too when the store keeps it, whatever the actor reads).
                res, cols = rollout(sim, actor, task, ep_seed, record=True, environment_state=ENV_STATE_KEY in keys)
                cols = {k: v for k, v in cols.items() if k in keys}
                writer.append_episode(cols, EpisodeMeta(task=sim.language, source=source, phase="forward",
                                                        success=res.success, policy_version=str(svc.version),
                                                        start_time_ns=time.time_ns(),
                                                        notes=json.dumps({"seed": ep_seed})))
                ok += int(res.success)
                episodes += 1
                transitions += res.steps
            updates = svc.online_round(store, save=True)
            out = RoundResult(r + 1, episodes, transitions, ok, updates, svc.step, time.perf_counter() - t0)
            results.append(out)
            if on_round is not None:
                on_round(out)
            if svc.online_finished or svc.stopped:
                break
    finally:
        if writer is not None:
            writer.close()
        svc.close()
    return results
