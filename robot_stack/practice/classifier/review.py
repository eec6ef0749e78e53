"""Fine-tuning the success classifier after a person reviewed practice labels (RoboFuME's remedy for its errors).

PracticeSession calls `on_corrections(corrected, reviewed)` after a review at an intervention that corrected at least
one label (PracticeConfig.review_attempts); RetrainOnReview is that callback. It fine-tunes on labels a person has
seen, the demonstrations and the attempts of every such review so far, and never on the judge's own unreviewed labels:
re-training on those taught the judge its false negatives back (one run: its backward success rate fell 0.89 -> 0.40
in 40 attempts while the truth stayed 1.0; practice.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from robot_stack.practice.classifier.base import SuccessClassifier
from robot_stack.practice.classifier.train import train_classifier


class RetrainOnReview:
    def __init__(self, classifier: SuccessClassifier, store: str | Path, languages: Sequence[str], steps: int = 300,
                 seed: int = 0, reverse: Mapping[str, str] | None = None, log: Callable[[str], None] = print):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.classifier, self.store, self.languages = classifier, Path(store), tuple(languages)
        self.steps, self.seed, self.reverse, self.log = steps, seed, reverse, log
        # Practice attempts of the reviews handed here (corrected or confirmed). A review that confirmed every label
        # is not handed on (PracticeSession._review), so its attempts are not learned from: measured that way.
        self.reviewed: set[int] = set()
        self.rounds: list[dict] = []

    @staticmethod
    def training_episodes(store, reviewed: set[int]) -> list[int]:
        """Every episode that is not practice (demos, teleop, prior data) plus the reviewed practice attempts."""
        return [i for i in store.episodes() if store.episode_meta(i).source != "practice" or i in reviewed]

    def __call__(self, corrected: dict[int, bool], reviewed: Sequence[int]) -> None:
        from robot_stack.store import TrajectoryStore

        self.reviewed.update(int(i) for i in reviewed)
        t = time.perf_counter()
        with TrajectoryStore.open(self.store, mode="r") as s:
            episodes = self.training_episodes(s, self.reviewed)
            train_classifier(s, self.languages, init=self.classifier, steps=self.steps,
                             seed=self.seed + len(self.rounds), episodes=episodes, reverse=self.reverse)
        self.rounds.append({"corrected": len(corrected), "reviewed": len(self.reviewed), "episodes": episodes,
                            "s": round(time.perf_counter() - t, 1)})
        self.log(f"classifier fine-tuned on {len(corrected)} corrected label(s), {len(self.reviewed)} reviewed "
                 f"attempt(s) in all ({self.steps} steps, {self.rounds[-1]['s']} s)")
