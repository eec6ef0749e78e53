"""In-process practice with learning (no ROS): RoboFuME's loop, reproducible step for step on one machine.

    svc.open() ─► svc.train_offline()      offline Cal-QL on the store's demonstrations (forward + backward)
      └─► PracticeSession over SimPracticeRig (reset-free MuJoCo; the learner's live policy explores, gripper held)
            every committed attempt (source "practice", labelled by the judge) ─► every `attempts_per_update`
            attempts: svc.online_round(store) takes them in (labels ─► rewards, MC returns) and spends its update
            budget (utd_ratio per new transition), then checkpoints (a new policy version)
      ─► on_update(UpdateResult) (evaluation, progress)

The ROS graph runs the same session with the practice node's rig and the learner node tailing the same store;
here the two sides alternate strictly so a fixed seed gives the same run (benchmarks/bench_practice.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_stack.practice.counts import AttemptRecord, PracticeCounts
from robot_stack.practice.judge import Judge
from robot_stack.practice.session import PracticeConfig, PracticeSession, TaskPair
from robot_stack.practice.sim_rig import SimPracticeRig


@dataclass
class UpdateResult:
    attempts: int       # practice attempts committed so far (this run)
    updates: int        # learner updates taken in this round
    step: int           # learner step after the round
    version: int        # policy version after the round
    status: dict        # the session's status (counts, success per direction, interventions, classifier)
    wall_s: float


class LivePolicyActor:
    """The learner's current policy, sampled with the gripper decision held (what a practice node runs); re-read at
    every attempt, so a new version acts from the next attempt on."""

    def __init__(self, svc: Any, gripper_hold_steps: int = 5):
        from robot_stack.learn.evaluate import PolicyActor

        self.svc, self._hold = svc, gripper_hold_steps
        self._actor = PolicyActor(svc.policy, stochastic=True, gripper_hold_steps=gripper_hold_steps)

    @property
    def reads_environment_state(self) -> bool:
        return self._actor.reads_environment_state

    def reset(self, task: str, seed: int, language: str) -> None:
        if self._actor.policy is not self.svc.policy:
            from robot_stack.learn.evaluate import PolicyActor

            self._actor = PolicyActor(self.svc.policy, stochastic=True, gripper_hold_steps=self._hold)
        self._actor.reset(task, seed, language)

    def act(self, obs, sim):
        return self._actor.act(obs, sim)


def run_practice(svc: Any, sim: Any, store_path: str | Path, tasks: TaskPair, judge: Judge | Callable[[Any], Judge],
                 config: PracticeConfig, attempts_per_update: int = 2, seed: int = 0, gripper_hold_steps: int = 5,
                 on_update: Callable[[UpdateResult], None] | None = None,
                 on_corrections: Callable[[dict[int, bool], list[int]], None] | None = None) -> dict:
    """Offline phase, then `config.max_attempts` practice attempts with a learner round every
    `attempts_per_update`; returns the session's final status plus `policy_ticks` (SimPracticeRig.tick_stats). The
    service is opened and closed here.

    judge: a Judge, or a callable sim -> Judge (GroundTruthJudge needs the sim)."""
    from robot_stack.store import TrajectoryStore

    if config.max_attempts is None:
        raise ValueError("in-process practice needs practice.max_attempts (it has no stop button)")
    if attempts_per_update < 1:
        raise ValueError(f"attempts_per_update must be >= 1, got {attempts_per_update}")
    store = svc.open()
    if store is None:
        raise RuntimeError(f"the learner stopped before it could read {store_path}")
    rig = None
    try:
        svc.train_offline()
        with TrajectoryStore.open(Path(store_path), mode="r") as s:
            counts = PracticeCounts.from_store(s, config.window, tasks=tasks.languages)
        rig = SimPracticeRig(sim, LivePolicyActor(svc, gripper_hold_steps), store_path, tasks.forward[0],
                             version=lambda: f"{svc.cfg.algo}@v{svc.version}", seed=seed)
        the_judge = judge if hasattr(judge, "judge") and not isinstance(judge, type) else judge(sim)
        t0 = time.perf_counter()
        done = [0]
        session: PracticeSession

        def on_attempt(rec: AttemptRecord) -> None:
            done[0] += 1
            if done[0] % attempts_per_update and done[0] != config.max_attempts:
                return
            updates = svc.online_round(store, save=True)
            if on_update is not None:
                on_update(UpdateResult(done[0], updates, svc.step, int(svc.version or 0), session.status(),
                                       time.perf_counter() - t0))

        session = PracticeSession(rig, the_judge, tasks, config, counts=counts, on_attempt=on_attempt,
                                  on_corrections=on_corrections)
        final = session.run()
        final["policy_ticks"] = rig.tick_stats()
        final["label_corrections"] = session.label_corrections
        return final
    finally:
        if rig is not None:
            rig.close()
        svc.close()
