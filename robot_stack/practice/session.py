"""PracticeSession: reset-free forward/backward practice (RoboFuME §III), as plain Python over a `PracticeRig`.

    start() ─► run() loop, one attempt at a time, no environment reset between attempts:
      ┌─► paused?  rig.hold() until resume() / stop()
      │   scheduled reset due (every `scheduled_reset_steps`)?  rig.reset("scheduled")        (counted apart)
      │   phase = forward, backward, forward, ... (the opposite of the last committed attempt, also after a restart)
      │   rig.run_attempt(task, language, horizon)  ── the newest verified policy acts, gripper decision held,
      │                                                 the rig records the steps (nothing committed yet)
      │     cut short by pause/stop ─► discard it (a shortened attempt is not a fixed-horizon sample); same phase again
      │     arm fault ─► discard, rig.reset("fault") (a person clears it; the sim resets itself), counted
      │   judge.judge(final obs, task)   ─► the label (success classifier; the truth only in oracle controls)
      │   judge.judge(final obs, reverse) ─► "is the scene back at its start?"
      │   rig.commit_attempt(EpisodeMeta(source practice, phase, success = judge, attempt, true_success = sim truth,
      │                                  policy_version, interventions = resets since the last attempt, notes JSON))
      │   counts.add(...) ─► on_attempt(record) (the in-process learner takes it in; over ROS the learner tails the store)
      │   rig.problems() (object off the table / out of reach) or `stuck_attempts` attempts in a row seeing neither the
      │   goal nor the start ─► rig.reset(kind, reason): on a real rig a person resets and confirms; in sim automatic.
      │     review_attempts > 0 and the rig can review: the person also checks the judge's labels of the last N
      │     attempts; rig.review() writes the corrections to the store (set_success) ─► on_corrections(corrected,
      │     reviewed) (the in-process loop re-trains the success classifier on the labels a person has seen)
      └── until stop(), max_attempts, or a reset the rig cannot get

Thread model: run() on one thread (the practice node's worker); pause/resume/stop/status from any other (ROS
services, the status timer). status() is a JSON-able snapshot in the dashboard's practice/status contract
(robot_stack/dashboard/hub.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from robot_stack.practice.counts import AttemptRecord, PracticeCounts, notes_json
from robot_stack.practice.judge import Judge
from robot_stack.types import PHASES

log = logging.getLogger(__name__)

# Session states (status()["state"]).
IDLE, RUNNING, PAUSED, WAITING_FOR_RESET, STOPPED, FINISHED, FAILED = (
    "idle", "running", "paused", "waiting_for_reset", "stopped", "finished", "failed")


@dataclass
class TaskPair:
    """The two directions of a reset-free pair: phase -> (task name, language)."""

    forward: tuple[str, str]
    backward: tuple[str, str]

    def of(self, phase: str) -> tuple[str, str]:
        return self.forward if phase == "forward" else self.backward

    @property
    def languages(self) -> tuple[str, str]:
        return self.forward[1], self.backward[1]

    @property
    def reverse_languages(self) -> dict[str, str]:
        """Each direction's language -> the other's (each task's start is the other's goal)."""
        return {self.forward[1]: self.backward[1], self.backward[1]: self.forward[1]}

    @classmethod
    def from_sim_tasks(cls, forward: str, backward: str | None = None) -> TaskPair:
        """A pair from `robot-stack sim tasks` (names; the backward task defaults to the forward task's reverse)."""
        from robot_stack.sim.tasks import get_task

        fw = get_task(forward)
        if fw.phase != "forward":
            raise ValueError(f"task {forward!r} is a {fw.phase} task; name the forward task of the pair "
                             f"(here: {fw.reverse!r})")
        bw_name = backward or fw.reverse
        if not bw_name:
            raise ValueError(f"task {forward!r} has no reverse task to practise with; pass backward= or pick a pair "
                             "from `robot-stack sim tasks`")
        bw = get_task(bw_name)
        return cls((fw.name, fw.language), (bw.name, bw.language))


@dataclass
class PracticeConfig:
    horizon_steps: int = 60           # a fixed horizon per attempt (RoboFuME: fixed-length attempts)
    max_attempts: int | None = None   # None: until stop()
    window: int = 20                  # success rate over the last N attempts per phase
    stuck_attempts: int = 4           # attempts in a row that see neither the goal nor the start -> ask for a reset
    scheduled_reset_steps: int = 0    # reset every N executed steps, counted apart (RoboFuME sim: 1,000); 0 = never
    first_phase: str = "forward"      # only for an empty history; afterwards the opposite of the last attempt
    # At a stuck or irreversible reset the person who resets also reviews the judge's labels of the last N attempts
    # (rig.review; the sim's stands in with the truth). 0 = no review.
    review_attempts: int = 0

    def __post_init__(self) -> None:
        if self.horizon_steps < 1:
            raise ValueError(f"practice.horizon_steps must be >= 1, got {self.horizon_steps}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"practice.max_attempts must be >= 0 or None, got {self.max_attempts}")
        if self.stuck_attempts < 1:
            raise ValueError(f"practice.stuck_attempts must be >= 1, got {self.stuck_attempts}")
        if self.scheduled_reset_steps < 0:
            raise ValueError(f"practice.scheduled_reset_steps must be >= 0 (0 = never), got {self.scheduled_reset_steps}")
        if self.review_attempts < 0:
            raise ValueError(f"practice.review_attempts must be >= 0 (0 = no review), got {self.review_attempts}")
        if self.first_phase not in PHASES:
            raise ValueError(f"practice.first_phase must be one of {PHASES}, got {self.first_phase!r}")


@dataclass
class AttemptRun:
    """What the rig reports after driving one attempt (the steps are recorded, not yet committed)."""

    steps: int
    final_obs: dict[str, np.ndarray] | None
    aborted: str | None = None        # "paused" | "stopped": cut short on request
    fault: str | None = None          # the arm (or the policy) faulted mid-attempt
    policy_version: str | None = None


class PracticeRig(Protocol):
    """The world as practice sees it. In-process: robot_stack.practice.sim_rig.SimPracticeRig; over ROS: the
    practice node's rig (inference node acts, recorder commits, sim services answer ground truth and resets)."""

    def run_attempt(self, task: str, language: str, horizon_steps: int,
                    should_abort: Callable[[], str | None]) -> AttemptRun: ...

    def commit_attempt(self, meta: Any) -> int | None: ...

    def discard_attempt(self) -> None: ...

    def ground_truth(self, task: str) -> bool | None: ...

    def problems(self) -> list[str]: ...

    def reset(self, kind: str, reason: str, should_abort: Callable[[], str | None]) -> bool: ...

    def hold(self) -> None: ...

    def policy_version(self) -> str | None: ...

    # Optional: def review(self, records: list[AttemptRecord]) -> dict[int, bool]
    #   a person checks the judge's labels of these attempts at an intervention and the wrong ones are corrected in
    #   the store (TrajectoryStore.set_success); returns episode -> corrected label. SimPracticeRig answers with the
    #   sim's truth; a rig without it gets no review.


@dataclass
class _Control:
    state: str = IDLE
    reason: str = ""
    pause: bool = False
    stop: bool = False
    started_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.wake = threading.Condition(self.lock)


class PracticeSession:
    def __init__(self, rig: PracticeRig, judge: Judge, tasks: TaskPair, config: PracticeConfig | None = None,
                 counts: PracticeCounts | None = None,
                 on_attempt: Callable[[AttemptRecord], None] | None = None,
                 on_corrections: Callable[[dict[int, bool], list[int]], None] | None = None):
        self.rig, self.judge, self.tasks = rig, judge, tasks
        self.config = config or PracticeConfig()
        self.counts = counts or PracticeCounts(self.config.window)
        self.on_attempt, self.on_corrections = on_attempt, on_corrections
        self._recent: list[AttemptRecord] = []   # this session's last attempts, for a review at an intervention
        self.label_corrections = 0
        self._c = _Control()
        self._pending_resets: list[dict] = []
        self._stuck_in_a_row = 0
        self._steps_since_reset = 0
        self._phase = self._next_phase()
        self._session_attempts = 0
        self.extra_status: dict[str, Any] = {}  # the node adds learner step/loss here (shown as is)

    # ------------------------------------------------------------------ control (any thread)
    def pause(self, reason: str = "paused by request") -> str:
        with self._c.lock:
            if self._c.state in (STOPPED, FINISHED, FAILED):
                return f"practice is {self._c.state}; nothing to pause"
            self._c.pause, self._c.reason = True, reason
            self._c.wake.notify_all()
            return "pausing after the current control step; the attempt in flight is discarded"

    def resume(self) -> str:
        with self._c.lock:
            if self._c.state in (STOPPED, FINISHED, FAILED):
                return f"practice is {self._c.state}; start a new session instead"
            was = self._c.pause
            self._c.pause = False
            self._c.wake.notify_all()
            return "resumed" if was else "practice was not paused"

    def stop(self, reason: str = "stopped by request") -> str:
        with self._c.lock:
            self._c.stop, self._c.reason = True, reason
            self._c.wake.notify_all()
            return "stopping after the current control step; the attempt in flight is discarded"

    def _abort_requested(self) -> str | None:
        with self._c.lock:
            return "stopped" if self._c.stop else "paused" if self._c.pause else None

    def _set_state(self, state: str, reason: str = "") -> None:
        with self._c.lock:
            self._c.state, self._c.reason = state, reason
        log.info("practice %s%s", state, f": {reason}" if reason else "")

    @property
    def state(self) -> str:
        with self._c.lock:
            return self._c.state

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Practise until stop(), max_attempts or a failed reset; returns the final status."""
        self._c.started_at = time.monotonic()
        self._set_state(RUNNING)
        try:
            while True:
                if not self._wait_while_paused():
                    break
                limit = self.config.max_attempts
                if limit is not None and self._session_attempts >= limit:
                    self._set_state(FINISHED, f"{limit} attempts done")
                    break
                if (self.config.scheduled_reset_steps and self._steps_since_reset >= self.config.scheduled_reset_steps
                        and not self._reset("scheduled", f"every {self.config.scheduled_reset_steps} steps")):
                    continue
                self._attempt()
        except Exception as e:  # the node reports it; the arm is told to hold either way
            log.exception("practice failed")
            self._set_state(FAILED, f"{type(e).__name__}: {e}")
            self.rig.hold()
            raise
        finally:
            with self._c.lock:
                if self._c.state in (RUNNING, PAUSED, WAITING_FOR_RESET):
                    self._c.state = STOPPED
        return self.status()

    def _wait_while_paused(self) -> bool:
        """Hold while paused; False once stop() was called."""
        held = False
        while True:
            with self._c.lock:
                if self._c.stop:
                    self._c.state = STOPPED
                    return False
                if not self._c.pause:
                    if self._c.state == PAUSED:
                        self._c.state, self._c.reason = RUNNING, "resumed"
                    return True
                self._c.state = PAUSED
                if held:
                    self._c.wake.wait(timeout=0.2)
            if not held:
                self.rig.hold()
                held = True

    def _attempt(self) -> None:
        phase = self._phase
        task, language = self.tasks.of(phase)
        rev_task, rev_language = self.tasks.of("backward" if phase == "forward" else "forward")
        attempt = self.counts.next_attempt
        version_at_start = self.rig.policy_version()
        run = self.rig.run_attempt(task, language, self.config.horizon_steps, self._abort_requested)
        self._steps_since_reset += run.steps
        if run.aborted:
            self.rig.discard_attempt()
            log.info("attempt %d (%s) cut short after %d steps (%s): discarded", attempt, phase, run.steps, run.aborted)
            return
        if run.fault:
            self.rig.discard_attempt()
            self._reset("fault", run.fault)
            return
        if run.final_obs is None:
            raise RuntimeError(f"the rig returned no final observation for attempt {attempt}; the judge needs one")
        verdict = self.judge.judge(run.final_obs, task, language)
        back_at_start = self.judge.judge(run.final_obs, rev_task, rev_language)
        truth = self.rig.ground_truth(task)
        version = run.policy_version or self.rig.policy_version()
        resets = list(self._pending_resets)
        extra = {"p": round(verdict.p, 4), "p_start": round(back_at_start.p, 4), "judge": self.judge.name,
                 "horizon_steps": self.config.horizon_steps}
        if version_at_start != version:
            extra["policy_version_at_start"] = version_at_start
        from robot_stack.store import EpisodeMeta

        meta = EpisodeMeta(task=language, source="practice", phase=phase, success=bool(verdict.success),
                           policy_version=version, interventions=len(resets), attempt=attempt, true_success=truth,
                           notes=notes_json(resets, **extra))
        episode = self.rig.commit_attempt(meta)
        self._pending_resets.clear()
        rec = AttemptRecord(attempt=attempt, phase=phase, task=language, success=bool(verdict.success),
                            true_success=truth, p=verdict.p, steps=run.steps, episode=episode,
                            policy_version=version, resets=resets)
        with self._c.lock:  # status() reads the counts from other threads
            self.counts.add(rec, resets_counted=True)
            self._session_attempts += 1
        self._phase = self._next_phase()
        log.info("attempt %d %s: %s (p %.2f%s) %d steps -> episode %s", attempt, phase,
                 "success" if verdict.success else "failure", verdict.p,
                 "" if truth is None else f", truth {'success' if truth else 'failure'}", run.steps, episode)
        self._recent = [*self._recent, rec][-max(self.config.review_attempts, 1):]
        if self.on_attempt is not None:
            self.on_attempt(rec)
        # Can practice go on by itself?
        self._stuck_in_a_row = 0 if (verdict.success or back_at_start.success) else self._stuck_in_a_row + 1
        problems = self.rig.problems()
        if problems:
            self._reset("irreversible", "; ".join(problems))
        elif self._stuck_in_a_row >= self.config.stuck_attempts:
            self._reset("stuck", f"the judge saw neither the goal nor the start for {self._stuck_in_a_row} attempts")

    def _reset(self, kind: str, reason: str) -> bool:
        """Ask the rig for a reset (a person on a real rig; automatic in sim); count it. False if it did not happen."""
        self._set_state(WAITING_FOR_RESET, f"{kind}: {reason}")
        self.rig.hold()
        done = self.rig.reset(kind, reason, self._abort_requested)
        if not done:
            if self._abort_requested() is None:
                # e.g. a sim that cannot place the scene again: practice cannot go on by itself.
                raise RuntimeError(f"the rig could not reset ({kind}: {reason})")
            return False  # stop/pause while waiting: the loop handles it; the reset is asked again next time
        self._pending_resets.append({"kind": kind, "reason": reason})
        with self._c.lock:
            self.counts.add_reset(kind)
        self._stuck_in_a_row = 0
        self._steps_since_reset = 0
        self._phase = "forward"  # a reset puts the scene at the forward task's start
        if kind in ("stuck", "irreversible"):
            self._review()
        self._set_state(RUNNING, f"reset done ({kind})")
        return True

    def _review(self) -> None:
        """The person at an intervention checks the last attempts' labels; corrections go to the store via the rig."""
        review = getattr(self.rig, "review", None)
        if not self.config.review_attempts or review is None:
            return
        records = [r for r in self._recent if r.episode is not None][-self.config.review_attempts:]
        if not records:
            return
        corrected = dict(review(records))
        self._recent = []
        if corrected:
            with self._c.lock:
                self.label_corrections += len(corrected)
            log.info("review at the intervention: %d of %d labels corrected %s", len(corrected), len(records),
                     corrected)
            if self.on_corrections is not None:
                self.on_corrections(corrected, [r.episode for r in records])

    def _next_phase(self) -> str:
        last = self.counts.last_phase
        if last is None:
            return self.config.first_phase
        return "backward" if last == "forward" else "forward"

    # ------------------------------------------------------------------ status (any thread)
    def status(self) -> dict:
        """practice/status JSON (robot_stack/dashboard/hub.py reads it)."""
        with self._c.lock:
            state, reason, started = self._c.state, self._c.reason, self._c.started_at
            out = self.counts.to_json()
        out.update({
            "state": state,
            "reason": reason,
            "attempt": self.counts.next_attempt,
            "phase": self._phase,
            "task": self.tasks.of(self._phase)[1],
            "policy_version": self.rig.policy_version(),
            "judge": self.judge.name,
            "session_attempts": self._session_attempts,
            "stuck_in_a_row": self._stuck_in_a_row,
            "label_corrections": self.label_corrections,
            "steps_since_reset": self._steps_since_reset,
            "elapsed_s": None if started is None else round(time.monotonic() - started, 1),
            **self.extra_status,
        })
        return out
