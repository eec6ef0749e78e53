"""Tiny diffusion policies (state and image mode) shared by the diffusion tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policies.base import make_policy
from robot_stack.policies.checkpoint import PolicySchema
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ENV_STATE_KEY, STATE_KEY, FeatureSpec, image_key, rig_features

STATE_DIM, ENV_DIM = 14, 5
# Every design element (T_o history, UNet with 2 levels + FiLM, EMA, DDIM) at CPU-test widths.
TINY_STATE = {"arch": "none", "cameras": [], "use_state": True, "use_environment_state": True, "latent_dim": 16,
              "down_dims": [16, 32], "step_embed_dim": 16, "unet_groups": 4, "horizon": 8, "n_action_steps": 4,
              "num_inference_steps": 5}
TINY_IMAGE = {**TINY_STATE, "arch": "resnet_tiny", "cameras": ["front"], "base_width": 8, "image_size_px": 32,
              "use_environment_state": False}


def make_normalizer(seed: int = 0, n: int = 300) -> Normalizer:
    rng = np.random.default_rng(seed)
    actions = rng.normal(0.0, 0.01, size=(n, 7))
    actions[:, 6] = rng.integers(0, 2, n)
    return Normalizer.fit(actions, rng.normal(size=(n, STATE_DIM)), env_states=rng.normal(size=(n, ENV_DIM)))


def make_obs(seed: int = 0, hw: tuple[int, int] = (24, 32)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {STATE_KEY: rng.normal(size=STATE_DIM).astype(np.float32),
            ENV_STATE_KEY: rng.normal(size=ENV_DIM).astype(np.float32),
            image_key("front"): rng.integers(0, 256, (*hw, 3), dtype=np.uint8)}


def make_schema(hw: tuple[int, int] = (24, 32)) -> PolicySchema:
    features = rig_features({"front": hw}, n_joints=6)
    features[ENV_STATE_KEY] = FeatureSpec("float32", (ENV_DIM,))
    return PolicySchema.from_features(features)


def build(config: dict, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return make_policy("diffusion", {**config, **overrides}, make_normalizer()).eval()


@pytest.fixture
def state_policy():
    return build(TINY_STATE)


@pytest.fixture
def image_policy():
    return build(TINY_IMAGE)
