"""Who decides whether a practice attempt succeeded: the learned success classifier, or (sim controls only) the truth.

    final observation ──► Judge.judge(obs, task) ──► Verdict(success, p)
      ClassifierJudge:  SuccessClassifier.success_probability(image of its camera, task language) >= threshold
      GroundTruthJudge: the sim's own success check (an oracle reward: an upper-bound control in benchmarks; a real
                        rig has no such thing, so `make demo` and the practice node default to the classifier)

The practice loop asks about both directions of a pair on the same final frame: the attempted task's goal, and the
reverse task's goal (= the attempted task's start). Seeing neither for several attempts means the scene drifted
somewhere practice cannot undo by itself (RoboFuME §III: the robot asks for help instead of practising forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot_stack.types import image_key


@dataclass(frozen=True)
class Verdict:
    success: bool
    p: float  # the judge's success probability (1.0 / 0.0 for the ground truth)


class Judge(Protocol):
    name: str

    def judge(self, obs: dict[str, np.ndarray], task: str, language: str) -> Verdict: ...


class ClassifierJudge:
    """A trained success classifier (robot_stack.practice.classifier) on the final frame of its camera."""

    name = "classifier"

    def __init__(self, classifier: Any):
        for attr in ("camera", "threshold", "success_probability"):
            if not hasattr(classifier, attr):
                raise TypeError(f"{type(classifier).__name__} is not a success classifier: it has no {attr!r} "
                                "(build one with robot_stack.practice.classifier.train_classifier)")
        self.classifier = classifier

    def judge(self, obs: dict[str, np.ndarray], task: str, language: str) -> Verdict:
        key = image_key(self.classifier.camera)
        if key not in obs:
            raise KeyError(f"the success classifier reads {key!r} but the observation has {sorted(obs)}; record that "
                           "camera or retrain the classifier on one the rig has")
        p = float(self.classifier.success_probability(np.asarray(obs[key])[None], [language])[0])
        if not np.isfinite(p):
            raise ValueError(f"the success classifier returned {p} for {language!r}: retrain or roll it back")
        return Verdict(p >= float(self.classifier.threshold), p)


class GroundTruthJudge:
    """The sim's ground-truth success of `task` in the current state: an oracle control, never a real-rig reward."""

    name = "ground_truth"

    def __init__(self, sim: Any):
        self.sim = sim

    def judge(self, obs: dict[str, np.ndarray], task: str, language: str) -> Verdict:
        ok = bool(self.sim.task_success(task))
        return Verdict(ok, 1.0 if ok else 0.0)
