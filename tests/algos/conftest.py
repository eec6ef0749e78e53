"""Tiny real stores (synthetic episodes with successes, failures and two tasks) and a tiny actor_critic config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.store import StoreSchema, TrajectoryStore
from robot_stack.types import rig_features

TASKS = ("put the cube in the bowl", "take the cube out of the bowl")
# Every design element (ResNet v1 + GroupNorm(4) + SLE(8) + bottleneck-LN-tanh, action/pixel-sep critic, twin Q)
# at CPU-test widths.
TINY_AC = {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16, "image_size_px": 32,
           "actor_hidden_dims": [32, 32], "critic_hidden_dims": [32, 32], "cameras": ["front", "wrist"]}


@pytest.fixture
def tiny_ac() -> dict:
    return dict(TINY_AC)


@pytest.fixture
def tasks() -> tuple[str, ...]:
    return TASKS


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def make_episode(schema: StoreSchema, seed: int, n_steps: int) -> dict[str, np.ndarray]:
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
    action[:, 3:5] = 0.05 * np.tanh(state[:, 3:5])
    action[:, 6] = (state[:, 6] > 0).astype(np.float32)
    ep["observation.state"], ep["action"] = state, action
    return ep


@pytest.fixture
def rl_store(tmp_path):
    """rl_store(n_episodes, ...) -> (path, writable store); episode i: task TASKS[i % 2], success unless i % 3 == 2."""
    opened = []

    def make(n_episodes: int, hw=(32, 32), n_steps: int = 8, source: str = "sim"):
        schema = StoreSchema(robot="wx250s", control_hz=5.0, action_space="ee_delta",
                             features=rig_features({"front": hw, "wrist": hw}, n_joints=6), cameras=("front", "wrist"))
        path = tmp_path / "store.zarr"
        store = TrajectoryStore.create(path, schema, fsync=False)
        opened.append(store)
        for i in range(n_episodes):
            append(store, i, n_steps, source)
        return path, store

    def append(store, i, n_steps=8, source="sim", success=None):
        meta = {"task": TASKS[i % 2], "source": source, "success": (i % 3 != 2) if success is None else success}
        return store.append_episode(make_episode(store.schema, 100 + i, n_steps), meta)

    make.append = append
    yield make
    for s in opened:
        s.close()
