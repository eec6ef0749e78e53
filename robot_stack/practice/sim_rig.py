"""SimPracticeRig: the `PracticeRig` of an in-process, reset-free MuJoCo practice session (no ROS).

    PracticeSession ──run_attempt(task)──► sim.set_task(task); sim.reset() homes the arm only (reset_free)
                                           actor.act(obs) per step (the live policy's sampled action, gripper held)
                                           sim.apply_ee_delta ─► executed action, frames kept in memory
                    ──commit_attempt(meta)──► TrajectoryStore.append_episode (committed like the recorder's)
                    ──reset(kind)──► sim.intervene(): the scene placed from the forward task's start distribution
                    ──review(records)──► the truth corrects the judge's labels of the last attempts (set_success)

Used by the practice tests, benchmarks/bench_practice.py and any sim experiment that must be reproducible step for
step; the ROS graph runs the same PracticeSession with the practice node's rig over topics and services.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robot_stack.learn.evaluate import episode_columns, observe
from robot_stack.practice.session import AttemptRun
from robot_stack.types import ENV_STATE_KEY, STATE_KEY, image_key

log = logging.getLogger(__name__)


class SimPracticeRig:
    """`sim` must be a TabletopSim built with reset_free=True; `actor` an evaluate.Actor (PolicyActor(stochastic=True)
    for exploration); `version` a callable giving the acting policy's version (the learner's, in-process)."""

    def __init__(self, sim: Any, actor: Any, store_path: str | Path, forward_task: str,
                 version: Callable[[], str | None] = lambda: None, seed: int = 0):
        if not getattr(sim.config, "reset_free", False):
            raise ValueError("practice needs a reset-free sim: build it with SimConfig(reset_free=True)")
        from robot_stack.store import TrajectoryStore

        self.sim, self.actor, self.forward_task = sim, actor, forward_task
        self._version = version
        self._seed = int(seed)
        self._n_resets = 0
        self._n_attempts = 0
        self.writer = TrajectoryStore.open(Path(store_path), mode="a")
        keys = set(self.writer.schema.features)
        self._env_state = ENV_STATE_KEY in keys
        self._cameras = tuple(c for c in sim.config.cameras if image_key(c) in keys)
        self._cols: dict[str, np.ndarray] | None = None
        # Each tick's policy step against the control period: in one process the rig waits for the policy, so a slow
        # step costs time, not a tick; a tick over the period is one a real-time rig would have missed.
        self._period_ms = 1000.0 / float(sim.config.control_hz)
        self._tick_ms: list[float] = []

    def tick_stats(self) -> dict:
        """Policy step per control tick: count, median/p99/max ms, and ticks over the control period."""
        t = np.asarray(self._tick_ms, np.float64)
        if not len(t):
            return {"ticks": 0, "over_period": 0, "period_ms": self._period_ms}
        return {"ticks": int(len(t)), "over_period": int((t > self._period_ms).sum()), "period_ms": self._period_ms,
                "median_ms": round(float(np.median(t)), 2), "p99_ms": round(float(np.percentile(t, 99)), 2),
                "max_ms": round(float(t.max()), 2)}

    def close(self) -> None:
        self.writer.close()

    # ------------------------------------------------------------------ PracticeRig
    def run_attempt(self, task: str, language: str, horizon_steps: int,
                    should_abort: Callable[[], str | None]) -> AttemptRun:
        sim = self.sim
        sim.set_task(task)
        sim.reset()  # reset-free: only the arm goes home (gripper open); the objects stay where they are
        self.actor.reset(task, self._seed * 100_003 + self._n_attempts, language)
        self._n_attempts += 1
        version = self._version()
        states, env_states, actions, images = [], [], [], {c: [] for c in self._cameras}
        aborted = None
        obs = observe(sim, tuple(sim.config.cameras), self._env_state)
        for _ in range(horizon_steps):
            aborted = should_abort()
            if aborted:
                break
            t_tick = time.perf_counter()
            action = np.asarray(self.actor.act(obs, sim), dtype=np.float32)
            self._tick_ms.append(1000.0 * (time.perf_counter() - t_tick))
            if action.shape != (7,) or not np.all(np.isfinite(action)):
                return AttemptRun(len(actions), None, fault=f"the policy returned {action!r}, not 7 finite floats",
                                  policy_version=version)
            executed = sim.apply_ee_delta(action)
            for c in self._cameras:
                images[c].append(obs[image_key(c)])
            states.append(obs[STATE_KEY])
            if self._env_state:
                env_states.append(obs[ENV_STATE_KEY])
            actions.append(np.asarray(executed, np.float32))
            obs = observe(sim, tuple(sim.config.cameras), self._env_state)
        self._cols = (episode_columns(states, actions, images, float(sim.config.control_hz),
                                      env_states if self._env_state else None) if actions else None)
        return AttemptRun(len(actions), obs, aborted=aborted, policy_version=version)

    def commit_attempt(self, meta: Any) -> int | None:
        if self._cols is None:
            return None
        meta = meta.replace(start_time_ns=meta.start_time_ns or time.time_ns())
        idx = self.writer.append_episode(self._cols, meta)
        self._cols = None
        return idx

    def discard_attempt(self) -> None:
        self._cols = None

    def ground_truth(self, task: str) -> bool | None:
        return bool(self.sim.task_success(task))

    def problems(self) -> list[str]:
        return list(self.sim.irreversible())

    def reset(self, kind: str, reason: str, should_abort: Callable[[], str | None]) -> bool:
        # The forward task's start distribution: after a reset practice begins with a forward attempt.
        self.sim.set_task(self.forward_task)
        self.sim.intervene(seed=10_000_000 + self._seed * 1_009 + self._n_resets)
        self._n_resets += 1
        log.info("sim reset %d (%s: %s)", self._n_resets, kind, reason)
        return True

    def hold(self) -> None:
        """The in-process sim does not move between calls; nothing to command."""

    def review(self, records) -> dict[int, bool]:
        """The person's review at an intervention, played by the sim's truth: every label that disagrees with the
        recorded `true_success` is corrected in the store. Returns episode -> corrected label."""
        wrong = {r.episode: bool(r.true_success) for r in records
                 if r.episode is not None and r.true_success is not None and bool(r.true_success) != r.success}
        for episode, label in wrong.items():
            self.writer.set_success([episode], label, by="sim review (truth)")
        return wrong

    def policy_version(self) -> str | None:
        return self._version()
