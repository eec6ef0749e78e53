"""Image encoders for the RL policies (PTR's "design decisions", reference/algorithms.md §1 "Networks").

    image (B, H, W, 3) uint8 ─► float [0, 1], resize to image_size_px ─► [train: random crop pad 4 + colour jitter]
      ─► ResNet v1 (7×7/2 stem, 3×3/2 max-pool, BasicBlocks, GroupNorm(4), optional FiLM(task) after every block)
      ─► SpatialLearnedEmbeddings (K[C, H, W, 8]: feat[c, f] = Σ_hw F[c, h, w]·K[c, h, w, f]) ─► (B, C·8)
    one trunk per camera (third-person + wrist), concatenated ─► Dense(latent_dim) ─► LayerNorm ─► tanh ─► (B, 256)

Widths: PTR uses ResNet-34 v1, stages (3, 4, 6, 3), 64 base filters (Asap7772/PTR resnet_encoderv1.py);
`resnet_tiny` (1, 1, 1, 1) × 8 filters is the CPU-test variant that keeps every design element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.bc_conv import random_shift

# name -> blocks per stage; BasicBlock only (ResNet-18/34 v1), as in PTR.
RESNET_STAGES: dict[str, tuple[int, ...]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet_tiny": (1, 1, 1, 1),
}


@dataclass
class EncoderSpec:
    """The encoder part of a policy config (flattened into it so it stays one JSON object)."""

    arch: str = "resnet18"
    base_width: int = 64
    norm_groups: int = 4            # GroupNorm(4) instead of BatchNorm (PTR `--encoder_norm group`)
    num_spatial_embeddings: int = 8  # SpatialLearnedEmbeddings features per channel (PTR num_spatial_blocks=8)
    latent_dim: int = 256           # bottleneck Dense(256) -> LayerNorm -> tanh (PTR use_bottleneck)
    image_size_px: int = 128


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al. 2018), as V-GPS applies after every ResNet block:
    x * (1 + γ(c)) + β(c). The projection starts at zero so an untrained FiLM is the identity.

    x: (B, C, H, W), cond: (B, D) -> (B, C, H, W).
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class BasicBlock(nn.Module):
    """ResNet v1 basic block: conv3×3-GN-ReLU-conv3×3-GN + (1×1-GN) shortcut, ReLU. (B, Cin, H, W) -> (B, C, H/s, W/s)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int, cond_dim: int):
        super().__init__()
        g = min(groups, out_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(g, out_ch, eps=1e-5)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(g, out_ch, eps=1e-5)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.GroupNorm(g, out_ch))
        self.film = FiLM(cond_dim, out_ch) if cond_dim > 0 else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        out = F.relu(h + (x if self.shortcut is None else self.shortcut(x)))
        if self.film is not None:
            out = self.film(out, cond)
        return out


class ResNetV1(nn.Module):
    """(B, 3, P, P) float -> (B, C_last, P/32, P/32) feature map; FiLM-conditioned on (B, cond_dim) when cond_dim > 0."""

    def __init__(self, arch: str, base_width: int, norm_groups: int, cond_dim: int = 0):
        super().__init__()
        if arch not in RESNET_STAGES:
            raise ValueError(f"unknown encoder arch {arch!r}; known: {sorted(RESNET_STAGES)}")
        self.stem = nn.Sequential(nn.Conv2d(3, base_width, 7, 2, 3, bias=False),
                                  nn.GroupNorm(min(norm_groups, base_width), base_width), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        blocks: list[BasicBlock] = []
        in_ch = base_width
        for stage, n_blocks in enumerate(RESNET_STAGES[arch]):
            out_ch = base_width * 2 ** stage
            for b in range(n_blocks):
                blocks.append(BasicBlock(in_ch, out_ch, 2 if (stage > 0 and b == 0) else 1, norm_groups, cond_dim))
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = in_ch
        for m in self.modules():  # Kaiming init, conv without bias (PTR resnet_encoderv1.py)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, cond)
        return x


class SpatialLearnedEmbeddings(nn.Module):
    """PTR spatial_softmax.py `SpatialLearnedEmbeddings`: a learned kernel K (C, H, W, F) pools each channel into F
    features, feat[b, c, f] = Σ_{h,w} x[b, c, h, w]·K[c, h, w, f]. (B, C, H, W) -> (B, C·F)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height, width, num_features))
        # LeCun-normal with PTR's fan-in: spatial_softmax.py initialises its (H, W, C, F) kernel with flax's
        # lecun_normal, whose fan-in for that shape is C·H·W (in_axis −2 times the receptive field H·W).
        nn.init.normal_(self.kernel, std=1.0 / math.sqrt(channels * height * width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,chwf->bcf", x, self.kernel).flatten(1)


def color_jitter(x: torch.Tensor, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2
                 ) -> torch.Tensor:
    """Per-sample random brightness/contrast/saturation (PTR augments obs and next-obs with crop + colour jitter).

    x: (B, 3, H, W) in [0, 1] -> same shape, clipped to [0, 1]. Hue jitter is not applied (see report).
    """
    b = x.shape[0]

    def factor(amount: float) -> torch.Tensor:
        return (1.0 + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1) * amount)

    x = x * factor(brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(contrast) + mean
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * factor(saturation) + gray
    return x.clamp(0.0, 1.0)


def augment(x: torch.Tensor, crop_pad_px: int, jitter: bool) -> torch.Tensor:
    """Random crop with edge padding (pad 4 in PTR) then colour jitter. (B, 3, H, W) -> (B, 3, H, W)."""
    x = random_shift(x, crop_pad_px)
    return color_jitter(x) if jitter else x


class ImageEncoder(nn.Module):
    """Multi-camera encoder: {cam: (B, H, W, 3) uint8} (+ cond (B, D)) -> latent (B, latent_dim) in (-1, 1)."""

    def __init__(self, spec: EncoderSpec, cameras: tuple[str, ...], cond_dim: int = 0):
        super().__init__()
        self.spec, self.cameras = spec, tuple(cameras)
        self.trunks = nn.ModuleDict({c: ResNetV1(spec.arch, spec.base_width, spec.norm_groups, cond_dim)
                                     for c in self.cameras})
        with torch.no_grad():  # the SLE kernel's (H, W) follows the trunk's output resolution
            trunk = next(iter(self.trunks.values()))
            probe = torch.zeros(1, 3, spec.image_size_px, spec.image_size_px)
            probe_cond = torch.zeros(1, cond_dim) if cond_dim > 0 else None
            _, c, h, w = trunk(probe, probe_cond).shape
        self.pools = nn.ModuleDict({cam: SpatialLearnedEmbeddings(c, h, w, spec.num_spatial_embeddings)
                                    for cam in self.cameras})
        self.bottleneck = nn.Linear(len(self.cameras) * c * spec.num_spatial_embeddings, spec.latent_dim)
        self.norm = nn.LayerNorm(spec.latent_dim)
        self.out_dim = spec.latent_dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, P, P) float in [0, 1]."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        p = self.spec.image_size_px
        if x.shape[-2:] != (p, p):
            x = F.interpolate(x, size=(p, p), mode="bilinear", align_corners=False, antialias=True)
        return x

    def forward(self, images: dict[str, torch.Tensor], cond: torch.Tensor | None = None) -> torch.Tensor:
        """images: {cam: (B, 3, P, P) float, already preprocessed/augmented} -> (B, latent_dim)."""
        feats = [self.pools[c](self.trunks[c](images[c], cond)) for c in self.cameras]
        return torch.tanh(self.norm(self.bottleneck(torch.cat(feats, dim=-1))))
