"""Practice tallies that survive a restart: rebuilt from the store's committed practice episodes, then kept live.

    store (source "practice" episodes: phase, attempt, success, true_success, interventions, notes JSON)
      └─► PracticeCounts.from_store() ─► next attempt number, next phase, success per phase over the last N,
                                         interventions (need-based and scheduled), classifier FP/FN vs the truth
      └─► counts.add(AttemptRecord) after every committed attempt (the same arithmetic, so a restarted node and one
          that never stopped report the same numbers)

What an episode's `interventions` means: the resets that happened after the previous attempt ended and before this
one started (a reset is decided on the state an attempt left behind). Their kinds ride in the episode's notes JSON
(`{"resets": [{"kind": "stuck" | "irreversible" | "fault" | "scheduled" | "operator", "reason": ...}], ...}`), so the
counts can tell a scheduled reset (RoboFuME resets the sim every 1,000 steps by design) from one practice asked for.
A reset after the very last attempt is counted live and lands in the store with the next attempt.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from robot_stack.types import PHASES

SCHEDULED = "scheduled"
RESET_KINDS = ("stuck", "irreversible", "fault", SCHEDULED, "operator")


@dataclass
class AttemptRecord:
    """One committed practice attempt, as the counts see it."""

    attempt: int
    phase: str
    task: str
    success: bool                # the judge's label (what the learner trains on)
    true_success: bool | None    # sim ground truth (measurement only), None on a real rig
    p: float | None = None       # the judge's success probability
    steps: int = 0
    episode: int | None = None   # store index
    policy_version: str | None = None
    resets: list[dict] = field(default_factory=list)  # the resets before this attempt (kind, reason)


def notes_json(resets: list[dict], **extra) -> str:
    return json.dumps({"resets": resets, **extra}, sort_keys=True, allow_nan=False)


def _notes(notes: str) -> dict:
    try:
        d = json.loads(notes) if notes else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def resets_of(notes: str) -> list[dict]:
    """The reset list of a practice episode's notes ([] for notes that are not ours, e.g. an operator's text)."""
    r = _notes(notes).get("resets", [])
    return [x for x in r if isinstance(x, dict)] if isinstance(r, list) else []


def _p(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class PracticeCounts:
    """Live tallies of a practice history (all practice episodes in the store, across sessions and restarts)."""

    def __init__(self, window: int = 20):
        if window < 1:
            raise ValueError(f"the success window must be >= 1 attempt, got {window}")
        self.window = int(window)
        self.attempts = 0
        self.last_attempt: int | None = None
        self.last_phase: str | None = None
        self.steps = 0
        self.by_phase = {p: 0 for p in PHASES}
        self.successes_by_phase = {p: 0 for p in PHASES}
        self.recent = {p: deque(maxlen=self.window) for p in PHASES}
        self.true_recent = {p: deque(maxlen=self.window) for p in PHASES}
        self.resets_by_kind = {k: 0 for k in RESET_KINDS}
        self.fp = self.fn = self.tp = self.tn = 0
        self.last: AttemptRecord | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_store(cls, store, window: int = 20, tasks: tuple[str, ...] | None = None) -> PracticeCounts:
        """Counts of every committed, non-excluded practice episode (of `tasks`' languages, if given), in attempt order."""
        counts = cls(window)
        rows = []
        for i in store.episodes(source="practice"):
            m = store.episode_meta(i)
            if m.phase not in PHASES or (tasks is not None and m.task not in tasks):
                continue
            n = store.episode_slice(i)
            rows.append((m.attempt if m.attempt is not None else -1, i, AttemptRecord(
                attempt=m.attempt if m.attempt is not None else i, phase=m.phase, task=m.task, success=bool(m.success),
                true_success=m.true_success, p=_p(_notes(m.notes).get("p")), steps=int(n.stop - n.start), episode=i, policy_version=m.policy_version,
                resets=resets_of(m.notes) or [{"kind": "operator", "reason": "recorded without kinds"}] * m.interventions)))
        for _, _, rec in sorted(rows, key=lambda r: (r[0], r[1])):
            counts.add(rec)
        return counts

    def add_reset(self, kind: str) -> None:
        if kind not in RESET_KINDS:
            raise ValueError(f"unknown reset kind {kind!r}; known: {RESET_KINDS}")
        self.resets_by_kind[kind] += 1

    def add(self, rec: AttemptRecord, resets_counted: bool = False) -> None:
        """One committed attempt. `resets_counted`: its resets were already added live (add_reset) as they happened."""
        if rec.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {rec.phase!r}")
        if not resets_counted:
            for r in rec.resets:
                self.add_reset(r.get("kind", "operator") if r.get("kind") in RESET_KINDS else "operator")
        self.attempts += 1
        self.last_attempt = rec.attempt if self.last_attempt is None else max(self.last_attempt, rec.attempt)
        self.last_phase = rec.phase
        self.steps += int(rec.steps)
        self.by_phase[rec.phase] += 1
        self.successes_by_phase[rec.phase] += int(rec.success)
        self.recent[rec.phase].append(bool(rec.success))
        if rec.true_success is not None:
            self.true_recent[rec.phase].append(bool(rec.true_success))
            if rec.success and not rec.true_success:
                self.fp += 1
            elif not rec.success and rec.true_success:
                self.fn += 1
            elif rec.success:
                self.tp += 1
            else:
                self.tn += 1
        self.last = rec

    # ------------------------------------------------------------------ reading
    @property
    def next_attempt(self) -> int:
        return 0 if self.last_attempt is None else self.last_attempt + 1

    @property
    def interventions(self) -> int:
        """Resets practice needed (stuck, irreversible, fault, operator): scheduled resets are not interventions."""
        return sum(n for k, n in self.resets_by_kind.items() if k != SCHEDULED)

    @property
    def scheduled_resets(self) -> int:
        return self.resets_by_kind[SCHEDULED]

    def success_rate(self, phase: str, truth: bool = False) -> float | None:
        """Success over the last `window` attempts of a phase (the judge's labels, or the sim's truth)."""
        q = (self.true_recent if truth else self.recent)[phase]
        return sum(q) / len(q) if q else None

    def interventions_per_100(self) -> float | None:
        return 100.0 * self.interventions / self.attempts if self.attempts else None

    def to_json(self) -> dict:
        with_truth = self.fp + self.fn + self.tp + self.tn
        out = {
            "attempts": self.attempts,
            "attempts_by_phase": dict(self.by_phase),
            "successes_by_phase": dict(self.successes_by_phase),
            "window": self.window,
            "success_rate": {p: self.success_rate(p) for p in PHASES},
            "true_success_rate": {p: self.success_rate(p, truth=True) for p in PHASES},
            "interventions": self.interventions,
            "scheduled_resets": self.scheduled_resets,
            "resets_by_kind": dict(self.resets_by_kind),
            "interventions_per_100_attempts": self.interventions_per_100(),
            "steps": self.steps,
            "classifier": {"fp": self.fp, "fn": self.fn, "tp": self.tp, "tn": self.tn, "with_truth": with_truth,
                           "fp_rate": self.fp / max(self.fp + self.tn, 1) if with_truth else None,
                           "fn_rate": self.fn / max(self.fn + self.tp, 1) if with_truth else None},
        }
        if self.last is not None:
            r = self.last
            out["result"] = {"attempt": r.attempt, "phase": r.phase, "success": r.success,
                             "true_success": r.true_success, "p": r.p, "steps": r.steps, "episode": r.episode}
        return out
