"""Training image augmentation (random 90 %-area crop + colour jitter) and the test-time center crop."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from robot_stack.policies.openvla.augment import (
    ColorJitter,
    center_crop_fraction,
    hsv_to_rgb,
    random_crop_fraction,
    rgb_to_hsv,
)
from robot_stack_testing.tiny_openvla import random_image, synthetic_frames


def _image(seed=0, shape=(3, 16, 20)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_hsv_matches_colorsys_and_round_trips():
    x = _image()
    hsv = rgb_to_hsv(x)
    for (i, j) in [(0, 0), (3, 7), (15, 19)]:
        expected = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
        assert np.allclose(hsv[:, i, j].numpy(), expected, atol=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), x, atol=1e-5)
    grey = torch.full((3, 2, 2), 0.4)
    assert torch.equal(rgb_to_hsv(grey)[:2], torch.zeros(2, 2, 2))   # no hue/saturation, no NaN


def test_each_jitter_does_what_the_reference_says():
    x = _image()
    assert torch.allclose(ColorJitter().apply(x), x, atol=1e-5)                 # neutral draw ≈ identity
    brighter = ColorJitter(brightness_delta=0.1).apply(x)
    assert torch.allclose(brighter, (x + 0.1).clamp(0, 1), atol=1e-5)
    flat = ColorJitter(contrast_factor=0.0).apply(x)                           # contrast 0: per-channel mean
    assert torch.allclose(flat, x.mean(dim=(-2, -1), keepdim=True).expand_as(x), atol=1e-5)
    grey = ColorJitter(saturation_factor=0.0).apply(x)
    assert torch.allclose(grey[0], grey[1], atol=1e-5) and torch.allclose(grey[1], grey[2], atol=1e-5)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(ColorJitter(hue_delta=1 / 3).apply(red).flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_jitter_keeps_shape_and_range_and_is_seeded():
    x = _image(1, (2, 3, 8, 8))
    for seed in range(20):
        j = ColorJitter.sample(np.random.default_rng(seed))
        assert -0.2 <= j.brightness_delta <= 0.2 and 0.8 <= j.contrast_factor <= 1.2
        assert 0.8 <= j.saturation_factor <= 1.2 and -0.05 <= j.hue_delta <= 0.05
        y = j.apply(x)
        assert y.shape == x.shape and y.dtype == x.dtype and y.min() >= 0 and y.max() <= 1
    assert ColorJitter.sample(np.random.default_rng(3)) == ColorJitter.sample(np.random.default_rng(3))
    assert random_crop_fraction(np.random.default_rng(0), 1.0) is None and center_crop_fraction(1.0) is None
    side, x0, y0 = random_crop_fraction(np.random.default_rng(0), 0.9)
    assert side == pytest.approx(np.sqrt(0.9)) and 0 <= x0 <= 1 and 0 <= y0 <= 1
    assert center_crop_fraction(0.9) == (pytest.approx(np.sqrt(0.9)), 0.5, 0.5)


def test_training_batches_are_augmented_deterministically_and_off_is_identity(base_policy):
    frames = synthetic_frames(seed=1, n=3)
    args = (frames.images, frames.actions, list(frames.tasks))
    plain = base_policy.make_training_batch(*args)["pixel_values"]
    aug_a = base_policy.make_training_batch(*args, rng=np.random.default_rng(5))["pixel_values"]
    aug_b = base_policy.make_training_batch(*args, rng=np.random.default_rng(5))["pixel_values"]
    aug_c = base_policy.make_training_batch(*args, rng=np.random.default_rng(6))["pixel_values"]
    assert torch.equal(aug_a, aug_b) and not torch.equal(aug_a, aug_c) and not torch.equal(aug_a, plain)
    assert aug_a.shape == plain.shape == (3, 6, 224, 224)
    # Crop only (jitter off) differs from crop + jitter under the same seed.
    base_policy.config.train_color_jitter = False
    try:
        crop_only = base_policy.make_training_batch(*args, rng=np.random.default_rng(5))["pixel_values"]
        assert not torch.equal(crop_only, aug_a) and not torch.equal(crop_only, plain)
        base_policy.config.train_crop_scale = 1.0
        off = base_policy.make_training_batch(*args, rng=np.random.default_rng(5))["pixel_values"]
        assert torch.equal(off, plain)
    finally:
        base_policy.config.train_color_jitter, base_policy.config.train_crop_scale = True, 0.9


def test_the_test_time_center_crop_is_off_by_default_and_crops_when_set(base_policy):
    image = random_image(2, (120, 160))
    obs = {"observation.images.front": image}
    assert base_policy.config.center_crop_scale == 1.0   # the Bridge evaluation asserts center_crop=False
    pixels, _ = base_policy._inputs(obs)
    assert torch.equal(pixels[0], base_policy.base.images(image).to(pixels.dtype))
    base_policy.config.center_crop_scale = 0.9
    try:
        cropped, _ = base_policy._inputs(obs)
        expected = base_policy.base.images(image, (np.sqrt(0.9), 0.5, 0.5))
        assert torch.equal(cropped[0], expected.to(cropped.dtype)) and not torch.equal(cropped, pixels)
    finally:
        base_policy.config.center_crop_scale = 1.0
