"""CollectSession: the operator's episode loop for teleoperated collection, in plain Python (no ROS).

    device events ──► [waiting] ─start─► recorder/start, teleop live ─success/fail─► recorder/stop(success)
                          ▲                     │ discard ─► recorder/discard                │
                          └──── reset (sim/reset, or prompt the person) ◄────────────────────┘
    intervene (policy mode): inference/enable False + teleop live ... intervene again: hand back to the policy

Talks to the graph through a RigClient-like `client` (call / call_json) and to the device through a
`TeleopLink` (events in, "teleop live" flag out). Recording never blocks control: the arm node executes
at its own rate; this loop only calls recorder services between episodes and polls events.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class TeleopLink:
    """Shared between the teleop publisher (ROS thread) and the session (main thread)."""

    def __init__(self):
        self.events: queue.Queue[str] = queue.Queue()
        # The same events with the stamp of the arm state the device read answered, for consumers that need
        # "the arm as it was at the key press" (calibrate home). Events are a few per episode: an undrained
        # queue (robot-stack collect) costs nothing worth bounding.
        self.stamped_events: queue.Queue[tuple[str, int]] = queue.Queue()
        self._live = threading.Event()
        self.steps_published = 0
        self.last_state_ns = 0

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def set_live(self, live: bool) -> None:
        (self._live.set if live else self._live.clear)()


@dataclass
class SessionReport:
    committed: list[int] = field(default_factory=list)
    discarded: int = 0
    successes: int = 0
    interventions: int = 0
    quit_early: bool = False


def count_committed(store_path: str, task: str) -> int:
    """Episodes with this task already in the store (resume after an interrupted session)."""
    from pathlib import Path

    if not Path(store_path).exists():
        return 0
    from robot_stack.store import TrajectoryStore

    store = TrajectoryStore.open(str(store_path), mode="r")
    try:
        return sum(1 for i in range(store.n_episodes) if store.episode_meta(i).task == task)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


class CollectSession:
    def __init__(self, client, link: TeleopLink, n_episodes: int, already: int = 0,
                 reset: Callable[[], None] | None = None, status: Callable[[str], None] | None = None,
                 max_episode_s: float = 120.0, policy_mode: bool = False, poll_s: float = 0.05,
                 check: Callable[[], None] | None = None):
        self.client, self.link = client, link
        self.n_episodes, self.already = n_episodes, already
        self.reset = reset or (lambda: None)
        self.status = status or (lambda line: log.info("%s", line))
        self.max_episode_s, self.policy_mode, self.poll_s = max_episode_s, policy_mode, poll_s
        self.check = check or (lambda: None)
        self.report = SessionReport()

    def _next_event(self, timeout_s: float) -> str | None:
        self.check()
        try:
            return self.link.events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def run(self) -> SessionReport:
        k = self.already
        if k >= self.n_episodes:
            self.status(f"{k}/{self.n_episodes} episodes of this task are already in the store; nothing to do")
            return self.report
        if k:
            self.status(f"resuming: {k} episodes of this task already committed")
        while k < self.n_episodes:
            self.reset()
            self.status(f"episode {k + 1}/{self.n_episodes}: reset the scene, then press start")
            ev = None
            while ev not in ("start", "quit"):
                ev = self._next_event(0.5)
            if ev == "quit":
                self.report.quit_early = True
                break
            outcome = self._episode(k)
            if outcome == "quit":
                self.report.quit_early = True
                break
            if outcome in ("success", "fail"):
                k += 1
        self.link.set_live(False)
        return self.report

    def _episode(self, k: int) -> str:
        started = self.client.call("recorder/start")
        if not started.success:
            raise RuntimeError(f"recorder refused to start: {started.message}")
        person = not self.policy_mode
        self._hand_to(person)
        t0, steps0 = time.monotonic(), self.link.steps_published
        outcome = None
        while outcome is None:
            ev = self._next_event(self.poll_s)
            dur = time.monotonic() - t0
            if ev in ("success", "fail", "discard", "quit"):
                outcome = ev
            elif ev == "intervene" and self.policy_mode:
                person = not person
                self.report.interventions += person
                self._hand_to(person)
            elif dur > self.max_episode_s:
                self.status(f"episode {k + 1}: {self.max_episode_s:.0f} s limit reached, kept as a failure")
                outcome = "fail"
            steps = self.link.steps_published - steps0
            self.status(f"episode {k + 1}/{self.n_episodes}  {dur:5.1f} s  {steps} steps  "
                        f"{steps / max(dur, 1e-3):4.1f} Hz  driver: {'person' if person else 'policy'}")
        self._hand_to(None)
        time.sleep(0.3)  # let the command already in flight execute and be recorded (> one control period)
        if outcome in ("discard", "quit"):
            self.client.call("recorder/discard")
            self.report.discarded += 1
            self.status(f"episode {k + 1} discarded")
            return outcome
        rec = self.client.call_json("recorder/stop", outcome == "success")
        if rec.get("episode") is None:
            self.status(f"episode {k + 1} was not committed: {rec}")
            return "not_committed"
        self.report.committed.append(int(rec["episode"]))
        self.report.successes += outcome == "success"
        self.status(f"episode {k + 1} committed as store episode {rec['episode']} "
                    f"({rec.get('steps')} steps, {rec.get('dropped', 0)} dropped frames, success={outcome == 'success'})")
        return outcome

    def _hand_to(self, person: bool | None) -> None:
        """person=True: teleop drives; False: the policy drives; None: nobody (between episodes)."""
        if self.policy_mode:
            self.client.call("inference/enable", person is False)
        self.link.set_live(bool(person))
