"""Train and measure the success classifier on store episodes.

    labelled_frames(store, tasks) ─► balanced batches (half positives) ─► BCE ─► Adam ─► classifier
    evaluate_classifier(clf, store, held-out episodes) ─► per task FP / FN rate on each episode's final frame
        against the sim's ground truth (`true_success`) where recorded, else the episode's label (RoboFuME Table II)

`init=` continues from an existing classifier (practice adds attempts; a person corrects some labels).
backend="vlm", config={"pretrained_dir": <local SigLIP/CLIP dir>} trains the vision-language backend (vlm.py); with
its base frozen every frame goes through the vision tower once and the steps train only the head.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.practice.classifier.base import SuccessClassifier, make_classifier
from robot_stack.practice.classifier.data import final_frames, labelled_frames, read_frames
from robot_stack.types import image_key

log = logging.getLogger(__name__)


def train_classifier(store, tasks: Sequence[str], backend: str = "cnn", config: dict | None = None,
                     steps: int = 500, batch_size: int = 64, lr: float = 3e-4, seed: int = 0,
                     episodes: Sequence[int] | None = None, init: SuccessClassifier | None = None,
                     progress: Callable[[dict], None] | None = None, progress_every: int = 100,
                     shuffle_labels: bool = False, reverse: Mapping[str, str] | None = None) -> SuccessClassifier:
    """A classifier trained on `episodes` (default: every labelled episode of `tasks`).

    reverse: task -> the task that undoes it; demonstrations' first frames then also label the reverse task's goal
    (robot_stack.practice.classifier.data.labelled_frames).

    shuffle_labels: permute the labels (a control: a classifier that still scores well learned nothing real)."""
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps >= 1 and batch_size >= 2, got {steps}, {batch_size}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clf = init if init is not None else make_classifier(backend, config or {}, tasks)
    if init is not None and tuple(tasks) != clf.tasks:
        raise ValueError(f"init classifier's tasks {list(clf.tasks)} differ from {list(tasks)}; train a new one")
    key = image_key(clf.camera)
    if key not in store.schema.features:
        raise KeyError(f"the store has no {key!r} (cameras: {list(store.schema.cameras)}); set the classifier's "
                       "camera to one the store records")
    ex = labelled_frames(store, clf.tasks, episodes, reverse=reverse)
    labels = rng.permutation(ex.label) if shuffle_labels else ex.label
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need both successes and failures to train on (got {len(pos)} positive, {len(neg)} negative "
                         "frames); collect successful demonstrations and some failed attempts")
    # Every labelled frame once, in memory, preprocessed in slices (a 224 px base's pixels are 0.6 MB a frame) and
    # reduced to what training can change (a frozen backbone's embeddings; the CNN's pixels).
    raw = read_frames(store, key, ex.step)
    frames = torch.cat([clf.encode_frozen(clf.preprocess(raw[i:i + 256])) for i in range(0, len(raw), 256)])
    params = [p for p in clf.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    clf.train()
    t0 = time.perf_counter()
    half = batch_size // 2
    for step in range(1, steps + 1):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])  # balanced: few successes
        logits = clf.logits(frames[idx], torch.from_numpy(ex.task[idx]))
        target = torch.from_numpy(labels[idx]).float().to(logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (step % progress_every == 0 or step == steps):
            progress({"step": step, "loss": float(loss.detach()), "wall_s": round(time.perf_counter() - t0, 1)})
    clf.trained_steps = getattr(clf, "trained_steps", 0) + steps
    return clf.eval()


def evaluate_classifier(clf: SuccessClassifier, store, episodes: Sequence[int] | None = None) -> dict:
    """Per task on each episode's final frame: FP rate (failures judged successes), FN rate, counts, accuracy."""
    if episodes is None:
        episodes = [i for i in store.episodes() if store.episode_meta(i).task in clf.tasks]
    episodes = [i for i in episodes if store.episode_meta(i).task in clf.tasks]
    out: dict[str, dict] = {}
    if not episodes:
        return out
    frames = read_frames(store, image_key(clf.camera), final_frames(store, episodes))
    metas = [store.episode_meta(i) for i in episodes]
    p = clf.success_probability(frames, [m.task for m in metas])
    for task in clf.tasks:
        rows = [(bool(pi >= clf.threshold), m.true_success if m.true_success is not None else m.success)
                for pi, m in zip(p, metas, strict=True) if m.task == task]
        rows = [(pred, truth) for pred, truth in rows if truth is not None]
        n_pos = sum(t for _, t in rows)
        n_neg = len(rows) - n_pos
        fp = sum(pred and not t for pred, t in rows)
        fn = sum(t and not pred for pred, t in rows)
        out[task] = {"n_pos": n_pos, "n_neg": n_neg, "fp": fp, "fn": fn,
                     "fp_rate": fp / n_neg if n_neg else None, "fn_rate": fn / n_pos if n_pos else None,
                     "accuracy": (len(rows) - fp - fn) / len(rows) if rows else None}
    return out
