"""Tiny saved bc_conv checkpoints for the runner and message tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policies.base import make_policy
from robot_stack.policies.bc_conv import BCConvConfig
from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import image_key, rig_features

IMAGE_HW = (24, 32)
TINY = BCConvConfig(image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,), group_norm_groups=4)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.fixture
def schema() -> PolicySchema:
    return PolicySchema.from_features(rig_features({"front": IMAGE_HW, "wrist": IMAGE_HW}, n_joints=6))


@pytest.fixture
def obs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    o = {image_key(c): rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8) for c in ("front", "wrist")}
    o["observation.state"] = rng.normal(size=14).astype(np.float32)
    return o


@pytest.fixture
def save_version(tmp_path, schema):
    """save_version(version, seed=..., nan=False) -> checkpoint dir under tmp_path/ckpt (weights from seed)."""
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    normalizer = Normalizer.fit(actions, rng.normal(size=(100, 14)))

    def save(version: int, seed: int | None = None, nan: bool = False):
        torch.manual_seed(version if seed is None else seed)
        policy = make_policy("bc_conv", TINY, normalizer)
        if nan:
            with torch.no_grad():
                policy.head[-1].bias.fill_(float("nan"))
        return save_checkpoint(policy, normalizer, schema, tmp_path / "ckpt", version, step=version * 10,
                               parent=version - 1 or None)

    return save
