"""Small real trajectory stores built in tmp_path for the learner tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.store import StoreSchema, TrajectoryStore
from robot_stack.types import rig_features


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def make_episode(schema: StoreSchema, seed: int, n_steps: int) -> dict[str, np.ndarray]:
    """Random-ish images (a per-episode colour plus noise), random state, actions that depend on the state."""
    rng = np.random.default_rng(seed)
    ep: dict[str, np.ndarray] = {}
    for key, spec in schema.features.items():
        shape = (n_steps, *spec.shape)
        if spec.dtype == "uint8":
            base = rng.integers(0, 256, 3, dtype=np.uint8)
            ep[key] = np.clip(base + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
        elif spec.dtype == "int64":
            ep[key] = np.arange(n_steps, dtype=np.int64) * 200_000_000
    state = rng.normal(size=(n_steps, 14)).astype(np.float32)
    action = np.zeros((n_steps, 7), np.float32)
    action[:, :3] = 0.01 * np.tanh(state[:, :3])
    action[:, 3:5] = 0.05 * np.tanh(state[:, 3:5])   # droll, dpitch; dyaw stays constant 0
    action[:, 6] = (state[:, 6] > 0).astype(np.float32)
    ep["observation.state"], ep["action"] = state, action
    return ep


@pytest.fixture
def store_factory(tmp_path):
    """store_factory(n_episodes, hw=(64, 64), n_steps=12, meta=...) -> (path, writable store)."""
    opened = []

    def make(n_episodes: int, hw=(64, 64), n_steps: int = 12, sources=None, successes=None):
        schema = StoreSchema(robot="wx250s", control_hz=5.0, action_space="ee_delta",
                             features=rig_features({"front": hw, "wrist": hw}, n_joints=6), cameras=("front", "wrist"))
        path = tmp_path / "store.zarr"
        store = TrajectoryStore.create(path, schema, fsync=False)
        opened.append(store)
        for i in range(n_episodes):
            append(store, i, n_steps, source=(sources or {}).get(i, "sim"), success=(successes or {}).get(i, True))
        return path, store

    def append(store, seed, n_steps=12, source="sim", success=True):
        return store.append_episode(make_episode(store.schema, seed, n_steps),
                                    {"task": "put the cube in the bowl", "source": source, "success": success})

    make.append = append
    yield make
    for s in opened:
        s.close()
