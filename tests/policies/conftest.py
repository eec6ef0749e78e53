"""Tiny bc_conv policies, normalisers and schemas shared by the policy tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policies.base import make_policy
from robot_stack.policies.bc_conv import BCConvConfig
from robot_stack.policies.checkpoint import PolicySchema
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import image_key, rig_features

IMAGE_HW = (24, 32)
TINY = BCConvConfig(image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,), group_norm_groups=4)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def make_normalizer(seed: int = 0, n: int = 200) -> Normalizer:
    rng = np.random.default_rng(seed)
    actions = rng.normal(0.0, 0.01, size=(n, 7))
    actions[:, 5] = 0.0  # a constant dim (yaw never used)
    actions[:, 6] = rng.integers(0, 2, n)
    return Normalizer.fit(actions, rng.normal(size=(n, 14)))


def make_schema(hw: tuple[int, int] = IMAGE_HW, cameras=("front", "wrist")) -> PolicySchema:
    return PolicySchema.from_features(rig_features({c: hw for c in cameras}, n_joints=6))


def make_obs(seed: int = 0, hw: tuple[int, int] = IMAGE_HW) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = {image_key(c): rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for c in ("front", "wrist")}
    obs["observation.state"] = rng.normal(size=14).astype(np.float32)
    return obs


@pytest.fixture
def normalizer() -> Normalizer:
    return make_normalizer()


@pytest.fixture
def schema() -> PolicySchema:
    return make_schema()


@pytest.fixture
def policy(normalizer):
    torch.manual_seed(0)
    return make_policy("bc_conv", TINY, normalizer).eval()


@pytest.fixture
def obs() -> dict[str, np.ndarray]:
    return make_obs(0)


@pytest.fixture
def obs_factory():
    return make_obs


@pytest.fixture
def schema_factory():
    return make_schema
