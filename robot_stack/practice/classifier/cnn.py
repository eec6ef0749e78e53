"""The CPU-default success classifier: a small conv net on one camera, FiLM-conditioned on the task language.

    uint8 (B, H, W, 3) ─► resize to image_size_px, [0, 1] ─► (train: random shift, DrQ) ─► 4 × [conv 3×3 stride 2,
    GroupNorm, ReLU, FiLM(task)] ─► global average pool ─► MLP ─► logit

The task enters as a learned embedding initialised from the hashing text encoder of its language (so similar
instructions start close); FiLM after every block lets "is the cube in the bowl" and "is the cube out of the bowl"
look at the same pixels with opposite answers, which one shared head cannot do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.practice.classifier.base import CLASSIFIERS, SuccessClassifier


@dataclass
class CNNClassifierConfig:
    camera: str = "front"
    image_size_px: int = 64
    channels: tuple[int, ...] = (16, 32, 32, 64)
    hidden_dim: int = 64
    text_dim: int = 32
    threshold: float = 0.5
    shift_px: int = 4              # random-shift augmentation while training (bc_conv / DrQ)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.image_size_px < 16 or not self.channels:
            raise ValueError(f"cnn classifier: image_size_px >= 16 and >= 1 conv block, got {self.image_size_px}, "
                             f"{self.channels}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"cnn classifier: threshold must be in (0, 1), got {self.threshold}")


@CLASSIFIERS.register("cnn")
class CNNClassifier(SuccessClassifier):
    backend = "cnn"
    config_class = CNNClassifierConfig

    def __init__(self, config: CNNClassifierConfig, tasks: Sequence[str]):
        super().__init__(config, tasks)
        from robot_stack.policies.text_encoder import make_text_encoder

        text = make_text_encoder({"name": "hashing", "dim": config.text_dim}).encode(list(self.tasks))
        self.task_embedding = nn.Parameter(text.clone())
        convs, films, norms = [], [], []
        c_in = 3
        for c in config.channels:
            convs.append(nn.Conv2d(c_in, c, 3, stride=2, padding=1))
            norms.append(nn.GroupNorm(min(8, c), c))
            film = nn.Linear(config.text_dim, 2 * c)
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)  # identity at init: γ = 1 + 0, β = 0
            films.append(film)
            c_in = c
        self.convs, self.norms, self.films = nn.ModuleList(convs), nn.ModuleList(norms), nn.ModuleList(films)
        self.head = nn.Sequential(nn.Linear(c_in + config.text_dim, config.hidden_dim), nn.ReLU(),
                                  nn.Linear(config.hidden_dim, 1))

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        s = self.config.image_size_px
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return x

    def logits(self, images: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
        if self.training and self.config.shift_px:
            from robot_stack.policies.bc_conv import random_shift

            images = random_shift(images, self.config.shift_px)
        z = self.task_embedding[task_index]
        h = images
        for conv, norm, film in zip(self.convs, self.norms, self.films, strict=True):
            h = F.relu(norm(conv(h)))
            gamma, beta = film(z).chunk(2, dim=-1)
            h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return self.head(torch.cat([h.mean(dim=(2, 3)), z], dim=-1)).squeeze(-1)
