"""A small real store for the dashboard tests (a uniquely named module: `conftest` is ambiguous across test dirs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_stack.store import EpisodeMeta, StoreSchema, TrajectoryStore
from robot_stack.types import rig_features

CAMERAS = {"front": (32, 32), "wrist": (32, 32)}
N_JOINTS = 6
# (source, phase, success, steps) of the episodes written by make_store
EPISODES = [("teleop", None, True, 6), ("practice", "forward", False, 9), ("practice", "backward", True, 7)]


def make_store(path: Path) -> Path:
    schema = StoreSchema(robot="wx250s", control_hz=5.0, action_space="ee_delta",
                         features=rig_features(CAMERAS, n_joints=N_JOINTS), cameras=tuple(CAMERAS))
    rng = np.random.default_rng(0)
    with TrajectoryStore.create(path, schema, fsync=False) as store:
        for source, phase, success, t in EPISODES:
            data = {}
            for key, spec in schema.features.items():
                shape = (t, *spec.shape)
                if spec.dtype == "uint8":
                    # frame k of every camera is filled with the value 10 * k: a replayed frame names its step
                    data[key] = np.broadcast_to((10 * np.arange(t, dtype=np.uint8))[:, None, None, None], shape).copy()
                elif spec.dtype == "int64":
                    data[key] = np.arange(t, dtype=np.int64)[:, None].repeat(int(np.prod(spec.shape)), 1).reshape(shape)
                else:
                    data[key] = rng.standard_normal(shape).astype(spec.dtype)
            store.append_episode(data, EpisodeMeta(task="put the cube in the bowl", source=source, phase=phase,
                                                   success=success))
    return path
