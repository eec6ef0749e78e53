"""`bc_conv`: behaviour cloning with a small conv encoder per camera (robomimic/diffusion_policy style).

    image (B, H, W, 3) uint8 ─► resize to image_size_px ─► [random shift, train only] ─► ConvEncoder
        (4× conv3x3 + GroupNorm + ReLU, 1/4 resolution) ─► spatial softmax keypoints (B, 2·C)        (one per camera)
    state (B, S) ─► (x - mean) / std ──────────────────────────────────────────────┐
    concat ─► MLP ─► 6 × tanh (normalised ee_delta, [-1, 1]) + 1 gripper logit ─► sigmoid ─► [0, 1]

Loss: MSE on the 6 normalised dims + BCE on the gripper (gripper targets are absolute in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.base import POLICIES, Policy, PolicyConfig
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, GRIPPER_INDEX, STATE_KEY, image_key


@dataclass
class BCConvConfig(PolicyConfig):
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size_px: int = 64            # square side images are resized to inside the policy
    # Two stride-2 layers then two at 1/4 resolution: ~0.09 s per batch-64 step (2 cameras, 64 px) on one
    # CPU core, 3x cheaper than (32, 32, 64, 64) at strides (2, 1, 2, 1); the learner runs on the rig's CPU.
    conv_channels: tuple[int, ...] = (32, 32, 32, 32)
    conv_strides: tuple[int, ...] = (2, 2, 1, 1)
    group_norm_groups: int = 8
    hidden_dims: tuple[int, ...] = (256, 256)
    shift_pad_px: int = 4              # random-shift augmentation (DrQ): pad then random crop back
    gripper_loss_weight: float = 1.0
    lr: float = 3e-4
    weight_decay: float = 1e-6


class SpatialSoftmax(nn.Module):
    """Expected (x, y) of each channel's softmax over space (Levine et al. 2016): (B, C, H, W) -> (B, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = torch.softmax(x.reshape(b, c, h * w), dim=-1)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        kx = (attn * grid_x.reshape(1, 1, -1)).sum(-1)
        ky = (attn * grid_y.reshape(1, 1, -1)).sum(-1)
        return torch.cat([kx, ky], dim=1)


class ConvEncoder(nn.Module):
    """(B, 3, P, P) float in [0, 1] -> (B, 2 · conv_channels[-1]) keypoint features."""

    def __init__(self, cfg: BCConvConfig):
        super().__init__()
        if len(cfg.conv_channels) != len(cfg.conv_strides):
            raise ValueError("BCConvConfig.conv_channels and conv_strides must have the same length")
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch, stride in zip(cfg.conv_channels, cfg.conv_strides, strict=True):
            # GroupNorm, not BatchNorm: behaviour is identical in train and eval and with batch size 1.
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
                       nn.GroupNorm(min(cfg.group_norm_groups, out_ch), out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        self.net = nn.Sequential(*layers)
        self.pool = SpatialSoftmax()
        self.out_dim = 2 * in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net(x))


def random_shift(x: torch.Tensor, pad_px: int) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by pad_px and crop back at a random integer offset per sample.

    x: (B, C, H, W) -> (B, C, H, W).
    """
    if pad_px <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad_px,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * pad_px + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * pad_px + 1, (b, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(b, h, w)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(b, h, w)
    flat = (rows * (w + 2 * pad_px) + cols).reshape(b, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, flat).reshape_as(x)


@POLICIES.register("bc_conv")
class BCConvPolicy(Policy):
    name = "bc_conv"
    config_class = BCConvConfig

    def __init__(self, config: BCConvConfig, normalizer: Normalizer):
        super().__init__(config, normalizer)
        if normalizer.passthrough_dims != (GRIPPER_INDEX,) or normalizer.action_dim != GRIPPER_INDEX + 1:
            raise ValueError("bc_conv predicts 6 ee_delta dims + an absolute gripper; the normalizer must have "
                             f"action_dim {GRIPPER_INDEX + 1} with passthrough dim {GRIPPER_INDEX}")
        self.encoders = nn.ModuleDict({cam: ConvEncoder(config) for cam in config.cameras})
        in_dim = sum(e.out_dim for e in self.encoders.values()) + normalizer.state_dim
        layers: list[nn.Module] = []
        for hidden in config.hidden_dims:
            layers += [nn.Linear(in_dim, hidden), nn.ReLU(inplace=True)]
            in_dim = hidden
        layers.append(nn.Linear(in_dim, normalizer.action_dim))
        self.head = nn.Sequential(*layers)

    def _image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, P, P) float in [0, 1], shifted at random in training."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        p = self.config.image_size_px
        if x.shape[-2:] != (p, p):
            x = F.interpolate(x, size=(p, p), mode="bilinear", align_corners=False, antialias=True)
        if self.training:
            x = random_shift(x, self.config.shift_pad_px)
        return x

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation batch (B, ...) -> raw head output (B, 7): 6 pre-tanh dims + gripper logit."""
        feats = [self.encoders[cam](self._image(batch[image_key(cam)])) for cam in self.config.cameras]
        state = (batch[STATE_KEY].float() - self._norm_state_mean) / self._norm_state_std
        return self.head(torch.cat([*feats, state], dim=-1))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self(batch)
        action = batch[ACTION_KEY].float()
        # Targets outside [q01, q99] are clipped: tanh cannot reach them and chasing them saturates it.
        target = (action * self._norm_action_scale + self._norm_action_offset)[:, :GRIPPER_INDEX].clamp(-1.0, 1.0)
        mse = F.mse_loss(torch.tanh(out[:, :GRIPPER_INDEX]), target)
        bce = F.binary_cross_entropy_with_logits(out[:, GRIPPER_INDEX], action[:, GRIPPER_INDEX].clamp(0.0, 1.0))
        loss = mse + self.config.gripper_loss_weight * bce
        return loss, {"loss": float(loss.detach()), "mse": float(mse.detach()), "bce": float(bce.detach())}

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [k for k in self.observation_keys() if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; bc_conv was trained on {self.observation_keys()}")
        was_training = self.training
        self.eval()
        try:
            # torch.tensor copies: observations decoded from ROS messages are read-only views of the bytes.
            batch = {k: torch.tensor(np.asarray(obs[k]), device=self.device).unsqueeze(0)
                     for k in self.observation_keys()}
            out = self(batch)[0]
        finally:
            self.train(was_training)
        normalised = torch.cat([torch.tanh(out[:GRIPPER_INDEX]), torch.sigmoid(out[GRIPPER_INDEX:])])
        action = normalised * self._norm_action_inv_scale + self._norm_action_inv_offset
        return action.cpu().numpy().astype(np.float32)
