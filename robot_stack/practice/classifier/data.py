"""Labelled frames for the success classifier, straight from the trajectory store (RoboFuME §III-B).

    episode of task A, success   frames [0, T - margin)      -> negative for A
                                 final `success_frames`       -> positive for A, negative for every other task
    episode of task A, failure   frames [0, T - margin) + final frames -> negative for A
    (the frames between, T - margin .. T - success_frames, are left out: the object may already be at the goal)
    with `reverse` (task -> the task that undoes it), a demonstration of task A (any source but practice)
                                 first `start_frames`          -> positive for reverse(A)

Forward and backward are separate, language-conditioned labels: the goal of the forward task is the start of the
backward one, so the final frames of a forward success are exactly the hard negatives of the backward task, and the
first frames of a demonstration (the scene as a person or the sim's reset placed it, the arm still at home) show the
reverse task's goal. Those start frames matter to reset-free practice: with the backward task's final frames alone
(a scripted set-down 17 cm to one side) the classifier called a cube left anywhere else on the table "not back at the
start" on a third of the backward attempts (benchmarks/results/practice.md), and each such miss moves practice
closer to a "stuck" reset. Practice attempts are never used this way: their start is wherever the last attempt ended.
Only `success` labels are used (a person's or the classifier's own, corrected); `true_success` (sim ground truth)
is for measurement and never becomes a training label. Excluded (tombstoned) episodes are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Examples:
    """Flat labelled examples: global store step index (N,), task index into `tasks` (N,), label 0/1 (N,)."""

    tasks: tuple[str, ...]
    step: np.ndarray
    task: np.ndarray
    label: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return int(self.step.shape[0])

    @property
    def n_pos(self) -> int:
        return int(self.label.sum())


def labelled_frames(store, tasks: Sequence[str], episodes: Sequence[int] | None = None, success_frames: int = 3,
                    margin_frames: int = 6, negatives_per_episode: int = 12,
                    reverse: Mapping[str, str] | None = None, start_frames: int = 2) -> Examples:
    """Examples from `episodes` (default: every non-excluded episode whose task is in `tasks`).

    negatives_per_episode: early frames per episode kept as negatives (evenly spaced; more adds near-duplicates).
    reverse: task language -> the language of the task that undoes it (both in `tasks`); a demonstration's first
    `start_frames` frames become positives of the reverse task (module docstring). None: final frames only.
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("name at least one task language to train the success classifier on")
    if success_frames < 1 or margin_frames < success_frames:
        raise ValueError(f"need 1 <= success_frames <= margin_frames, got {success_frames}, {margin_frames}")
    index = {t: i for i, t in enumerate(tasks)}
    reverse = dict(reverse or {})
    unknown = sorted({t for kv in reverse.items() for t in kv} - set(index))
    if unknown:
        raise ValueError(f"reverse names tasks the classifier is not trained on: {unknown}; its tasks: {list(tasks)}")
    if start_frames < 1 or start_frames > margin_frames:
        raise ValueError(f"need 1 <= start_frames <= margin_frames, got {start_frames}, {margin_frames}")
    if episodes is None:
        episodes = [i for i in store.episodes() if store.episode_meta(i).task in index]
    steps, task_ids, labels, eps = [], [], [], []

    def add(frames, task_i, label, ep):
        steps.extend(frames)
        task_ids.extend([task_i] * len(frames))
        labels.extend([label] * len(frames))
        eps.extend([ep] * len(frames))

    for ep in episodes:
        meta = store.episode_meta(ep)
        if meta.task not in index or meta.success is None:
            continue
        sl = store.episode_slice(ep)
        n = sl.stop - sl.start
        if n < margin_frames + 1:
            continue
        early = np.unique(np.linspace(0, n - margin_frames - 1, min(negatives_per_episode, n - margin_frames))
                          .round().astype(int)) + sl.start
        final = list(range(sl.stop - success_frames, sl.stop))
        t = index[meta.task]
        add(list(early), t, 0, ep)
        if meta.success:
            add(final, t, 1, ep)
            for other in range(len(tasks)):
                if other != t:
                    add(final, other, 0, ep)
        else:
            add(final, t, 0, ep)
        if meta.task in reverse and meta.source != "practice":
            add(list(range(sl.start, sl.start + start_frames)), index[reverse[meta.task]], 1, ep)
    if not steps:
        raise ValueError(f"no labelled episodes of {list(tasks)} in {store.path} (episodes need a success label and "
                         f"more than {margin_frames} steps); collect demonstrations first")
    return Examples(tasks, np.asarray(steps, np.int64), np.asarray(task_ids, np.int64), np.asarray(labels, np.int64),
                    np.asarray(eps, np.int64))


def final_frames(store, episodes: Sequence[int]) -> np.ndarray:
    """(E,) global step index of each episode's last frame (what practice judges)."""
    return np.asarray([store.episode_slice(i).stop - 1 for i in episodes], np.int64)


def read_frames(store, key: str, steps: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) frames at global step indices (grouped into contiguous runs: per-chunk overhead, not
    decoding, limits random zarr reads)."""
    steps = np.asarray(steps, np.int64)
    order = np.argsort(steps)
    out = np.empty((len(steps), *store.schema.features[key].shape), np.uint8)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and steps[order[j + 1]] - steps[order[j]] <= 8:
            j += 1
        lo, hi = int(steps[order[i]]), int(steps[order[j]]) + 1
        block = store.read(key, lo, hi)
        for k in range(i, j + 1):
            out[order[k]] = block[steps[order[k]] - lo]
        i = j + 1
    return out
