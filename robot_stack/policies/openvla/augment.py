"""OpenVLA's training image augmentation and its test-time center crop, in torch on the image tensor.

    uint8 (H, W, 3) ─► random crop of 90 % of the AREA (side × √0.9, square ratio) ─► resize to 224 (processor.py)
                   ─► [0, 1] float (3, S, S) ─► brightness ─► contrast ─► saturation ─► hue ─► mean/std normalise

The recipe is vla-scripts/finetune.py's `image_aug=True` (prismatic/vla/datasets/datasets.py `image_augment_kwargs`,
applied by dlimp in this order): random_resized_crop scale [0.9, 0.9] ratio [1, 1]; random_brightness [0.2]
(add δ ~ U[-0.2, 0.2]); random_contrast [0.8, 1.2] ((x - per-channel mean)·f + mean); random_saturation [0.8, 1.2]
(HSV saturation × f); random_hue [0.05] (HSV hue + δ, δ ~ U[-0.05, 0.05] of a full turn); the image is clipped to
[0, 1] after each step (tf.image semantics). torchvision is not used (not installable beside the pinned CPU torch).
At test time OpenVLA's LIBERO evaluation center-crops 90 % of the area and resizes back to 224; the Bridge
evaluation asserts center_crop=False, so the policy's `center_crop_scale` is 1 (off) unless set.

One parameter draw per image is applied to both backbones' resized copies (DINOv2 and SigLIP see the same
augmented image), from the training loop's numpy Generator: deterministic under its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BRIGHTNESS_MAX_DELTA = 0.2
CONTRAST_RANGE = (0.8, 1.2)
SATURATION_RANGE = (0.8, 1.2)
HUE_MAX_DELTA = 0.05


@dataclass(frozen=True)
class ColorJitter:
    """One draw of the colour augmentation; `apply` maps (..., 3, H, W) floats in [0, 1] into [0, 1]."""

    brightness_delta: float = 0.0
    contrast_factor: float = 1.0
    saturation_factor: float = 1.0
    hue_delta: float = 0.0           # fraction of a full hue turn

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ColorJitter:
        return cls(brightness_delta=float(rng.uniform(-BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA)),
                   contrast_factor=float(rng.uniform(*CONTRAST_RANGE)),
                   saturation_factor=float(rng.uniform(*SATURATION_RANGE)),
                   hue_delta=float(rng.uniform(-HUE_MAX_DELTA, HUE_MAX_DELTA)))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + self.brightness_delta).clamp(0.0, 1.0)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        x = ((x - mean) * self.contrast_factor + mean).clamp(0.0, 1.0)
        h, s, v = rgb_to_hsv(x).unbind(-3)
        s = (s * self.saturation_factor).clamp(0.0, 1.0)
        h = torch.remainder(h + self.hue_delta, 1.0)
        return hsv_to_rgb(torch.stack([h, s, v], dim=-3)).clamp(0.0, 1.0)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV, each in [0, 1] (hue as a fraction of a turn; grey pixels hue 0)."""
    r, g, b = rgb.unbind(-3)
    maxc, _ = rgb.max(dim=-3)
    minc, _ = rgb.min(dim=-3)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-12), torch.zeros_like(maxc))
    safe = delta.clamp(min=1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack([h, s, maxc], dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv: (..., 3, H, W) HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = hsv.unbind(-3)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    # Sector i of the hue circle picks which of (v, t, p, q) each channel takes.
    r = torch.stack([v, q, p, p, t, v], dim=0).gather(0, i[None]).squeeze(0)
    g = torch.stack([t, v, v, q, p, p], dim=0).gather(0, i[None]).squeeze(0)
    b = torch.stack([p, p, t, v, v, q], dim=0).gather(0, i[None]).squeeze(0)
    return torch.stack([r, g, b], dim=-3)


def random_crop_fraction(rng: np.random.Generator, area: float) -> tuple[float, float, float] | None:
    """(side fraction, x0, y0) of a square random crop covering `area` of the image, or None when area is 1."""
    if area >= 1.0:
        return None
    return float(np.sqrt(area)), float(rng.uniform()), float(rng.uniform())


def center_crop_fraction(area: float) -> tuple[float, float, float] | None:
    """The test-time center crop of `area` of the image (side × √area, centred), or None when area is 1."""
    if area >= 1.0:
        return None
    return float(np.sqrt(area)), 0.5, 0.5
