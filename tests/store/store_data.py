"""Tiny rig schema and deterministic episodes for the store tests (a uniquely named module: `conftest` is
ambiguous when several test directories are collected together)."""

from __future__ import annotations

import numpy as np

from robot_stack.store import StoreSchema
from robot_stack.types import rig_features

CAMERAS = {"wrist": (12, 16), "scene": (8, 10)}
N_JOINTS = 6


def make_schema() -> StoreSchema:
    return StoreSchema(robot="wx250s", control_hz=10.0, action_space="ee_delta",
                       features=rig_features(CAMERAS, n_joints=N_JOINTS), cameras=tuple(CAMERAS))


def make_episode(seed: int, n_steps: int | None = None) -> dict[str, np.ndarray]:
    """{key: (T, *shape)} random but reproducible from seed; T in [5, 80) unless given."""
    rng = np.random.default_rng(seed)
    t = int(rng.integers(5, 80)) if n_steps is None else n_steps
    out = {}
    for key, spec in make_schema().features.items():
        shape = (t, *spec.shape)
        if spec.dtype == "uint8":
            out[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec.dtype == "int64":
            out[key] = rng.integers(0, 2**62, shape, dtype=np.int64)
        else:
            out[key] = rng.standard_normal(shape).astype(spec.dtype)
    return out
