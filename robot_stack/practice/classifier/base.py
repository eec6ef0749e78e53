"""The success-classifier interface, its registry and its checkpoint (safetensors + JSON, sha256-checked).

    SuccessClassifier.success_probability(images uint8 (B, H, W, 3), languages (B,)) -> float32 (B,) in [0, 1]
    save(dir): config.json (backend + its config + tasks + threshold), model.safetensors, manifest.json (sha256
               of every file), written to a temp dir, fsynced, renamed; load_classifier(dir) verifies every hash
               and never unpickles anything.
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_stack.registry import Registry

CLASSIFIERS: Registry[type] = Registry("success classifier backend")
CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE = "config.json", "model.safetensors", "manifest.json"
FORMAT = "robot_stack.success_classifier/1"


class ClassifierError(RuntimeError):
    pass


class SuccessClassifier(torch.nn.Module, abc.ABC):
    """A language-conditioned binary success detector on one camera's frames."""

    backend: str

    def __init__(self, config: Any, tasks: Sequence[str]):
        super().__init__()
        self.config = config
        self.tasks = tuple(tasks)
        self.camera: str = config.camera
        self.threshold: float = float(config.threshold)

    @abc.abstractmethod
    def logits(self, images: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, H, W) in [0, 1] at the model's size, task_index long (B,) -> logits (B,)."""

    @abc.abstractmethod
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, h, w) as logits() wants it."""

    def encode_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """What logits() computes from preprocessed images that training cannot change, done once per labelled frame
        by train_classifier; logits() accepts its output in place of the images. Default: the images (the CNN trains
        on pixels); a frozen pretrained backbone returns its embeddings, so training runs only the head."""
        return images

    def task_index(self, languages: Sequence[str]) -> torch.Tensor:
        unknown = sorted({lang for lang in languages if lang not in self.tasks})
        if unknown:
            raise KeyError(f"the success classifier was not trained on {unknown}; its tasks: {list(self.tasks)} "
                           "(retrain it with those tasks' demonstrations)")
        return torch.tensor([self.tasks.index(lang) for lang in languages], dtype=torch.long)

    @torch.no_grad()
    def success_probability(self, images: np.ndarray, languages: Sequence[str]) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images (B, H, W, 3), got {images.dtype} {images.shape}")
        if len(languages) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(languages)} languages: one language per image")
        was = self.training
        self.eval()
        p = torch.sigmoid(self.logits(self.preprocess(images), self.task_index(list(languages))))
        self.train(was)
        return p.float().cpu().numpy()

    def is_success(self, image: np.ndarray, language: str) -> tuple[bool, float]:
        p = float(self.success_probability(np.asarray(image)[None], [language])[0])
        return p >= self.threshold, p

    # ------------------------------------------------------------------ checkpoint
    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint holds (a frozen pretrained backbone may leave itself out)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    def extra_config(self) -> dict:
        """Backend fields for config.json beyond its config dataclass (e.g. a pretrained base's hash)."""
        return {}

    def restore_extra(self, saved: dict) -> None:
        """Check/apply extra_config() fields when loading (a backend refuses a base that changed)."""

    def may_lack(self, key: str) -> bool:
        """State keys a checkpoint may leave out (a frozen pretrained backbone loaded from its own directory)."""
        return False

    def save(self, path: str | Path, trained_steps: int = 0, notes: dict | None = None) -> Path:
        from dataclasses import asdict

        from safetensors.torch import save_file

        from robot_stack.policies.checkpoint import _fsync_path as _fsync_dir
        from robot_stack.policies.checkpoint import _write_synced, sha256_file

        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            save_file(self.state_to_save(), str(tmp / WEIGHTS_FILE))
            cfg = {"format": FORMAT, "backend": self.backend, "config": asdict(self.config), "tasks": list(self.tasks),
                   "trained_steps": int(trained_steps), "notes": notes or {}, **self.extra_config()}
            _write_synced(tmp / CONFIG_FILE, json.dumps(cfg, indent=2, allow_nan=False).encode())
            files = {n: sha256_file(tmp / n) for n in (CONFIG_FILE, WEIGHTS_FILE)}
            _write_synced(tmp / MANIFEST_FILE, json.dumps({"format": FORMAT, "files": files}, indent=2).encode())
            _fsync_dir(tmp)
            if final.exists():  # replace an older save of the same name: move it aside first, then drop it
                old = final.parent / f".{final.name}.old-{uuid.uuid4().hex}"
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final


def make_classifier(backend: str, config: dict | Any, tasks: Sequence[str]) -> SuccessClassifier:
    from robot_stack.practice.classifier import cnn, vlm  # noqa: F401  (register the built-in backends)

    cls = CLASSIFIERS.get(backend)
    if isinstance(config, dict):
        from robot_stack.policies.base import dataclass_from_dict

        config = dataclass_from_dict(cls.config_class, config)
    return cls(config, tasks)


def load_classifier(path: str | Path, overrides: dict | None = None) -> SuccessClassifier:
    """A saved classifier; every file's sha256 checked against the manifest first (a message names a bad file).

    overrides: config fields that may differ on this machine, e.g. {"pretrained_dir": ..., "device": "cuda"} for a
    vlm classifier whose base lives elsewhere here (the backend still refuses a base that is not the one it was
    trained on)."""
    from safetensors.torch import load_file

    from robot_stack.policies.checkpoint import sha256_file

    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ClassifierError(f"{manifest_path} is missing: {path} is not a saved success classifier (train one with "
                              "robot_stack.practice.classifier.train_classifier)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as e:
        raise ClassifierError(f"{manifest_path} is malformed ({e}); save the classifier again") from None
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        f = path / name
        if name not in files or not f.is_file():
            raise ClassifierError(f"{f} is missing or not in the manifest; copy the whole classifier directory again")
        if sha256_file(f) != files[name]:
            raise ClassifierError(f"{f}: sha256 does not match {manifest_path}; the file is corrupt or was modified: "
                                  "copy the classifier again or retrain it")
    cfg = json.loads((path / CONFIG_FILE).read_text())
    if cfg.get("format") != FORMAT:
        raise ClassifierError(f"{path / CONFIG_FILE}: format {cfg.get('format')!r} is not {FORMAT!r}; retrain it")
    clf = make_classifier(cfg["backend"], {**cfg["config"], **(overrides or {})}, cfg["tasks"])
    clf.restore_extra(cfg)
    state = load_file(str(path / WEIGHTS_FILE))
    missing, unexpected = clf.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if k]
    missing = [k for k in missing if not clf.may_lack(k)]
    if missing or unexpected:
        raise ClassifierError(f"{path / WEIGHTS_FILE} does not match a {cfg['backend']} classifier of this config: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}; retrain it")
    clf.trained_steps = int(cfg.get("trained_steps", 0))
    return clf.eval()
