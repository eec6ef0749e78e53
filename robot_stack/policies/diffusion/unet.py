"""The denoiser ε_θ(x_t, t, obs): a 1-D temporal conv UNet with FiLM conditioning (Chi et al. 2023 §3.3, "CNN-based").

    x_t (B, T_p, A) ─► (B, A, T_p)
    t (B,) ─► sinusoidal (step_embed_dim) ─► Linear ─► Mish ─► Linear ─┐
    obs_cond (B, D_obs) ───────────────────────────────────────────────┴─► cond (B, step_embed_dim + D_obs)
    down:  per level l: ResBlock(C_{l-1} → C_l) ×2 (each FiLM-ed by cond), then stride-2 conv (not after the last)
    mid:   ResBlock(C_L → C_L) ×2
    up:    per level (reversed, without the widest): concat skip ─► ResBlock ×2 ─► transposed conv ×2 in time
    out:   Conv1dBlock ─► 1×1 conv ─► ε̂ (B, T_p, A)

ResBlock: Conv1d(k)─GroupNorm─Mish ─► FiLM(cond) ─► Conv1d(k)─GroupNorm─Mish, + (1×1 conv) residual. The FiLM layer is
the project's (robot_stack/policies/encoders.py, x·(1 + γ) + β, zero-initialised) applied to (B, C, T, 1); diffusion
policy applies Mish then Linear to the condition, which is the `cond_activation` here (once, shared by all blocks).

The time axis halves at every level but the last, so T_p must be divisible by 2^(levels − 1) (16 with 3 levels).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.encoders import FiLM


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style embedding of the diffusion step (Ho et al. 2020 §4 / Vaswani et al.): (B,) -> (B, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"step_embed_dim must be even, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
        angle = t.float()[:, None] * freq[None, :]
        return torch.cat([angle.sin(), angle.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    """Conv1d (same padding) ─► GroupNorm ─► Mish: (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, groups: int):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(min(groups, out_ch), out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(self.norm(self.conv(x)))


class ConditionalResBlock1d(nn.Module):
    """(B, C_in, T), cond (B, D) -> (B, C_out, T); see the module docstring."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, groups: int):
        super().__init__()
        self.block1 = Conv1dBlock(in_ch, out_ch, kernel_size, groups)
        self.film = FiLM(cond_dim, out_ch)
        self.block2 = Conv1dBlock(out_ch, out_ch, kernel_size, groups)
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.film(self.block1(x).unsqueeze(-1), cond).squeeze(-1)
        return self.block2(h) + self.residual(x)


class ConditionalUnet1d(nn.Module):
    """ε_θ: x_t (B, T_p, A), t (B,) long, obs_cond (B, D_obs) -> ε̂ (B, T_p, A)."""

    def __init__(self, action_dim: int, obs_cond_dim: int, down_dims: tuple[int, ...] = (64, 128, 256),
                 kernel_size: int = 5, groups: int = 8, step_embed_dim: int = 64):
        super().__init__()
        if not down_dims:
            raise ValueError("down_dims needs at least one level, e.g. (64, 128, 256)")
        self.levels = len(down_dims)
        self.step_embed = nn.Sequential(SinusoidalStepEmbedding(step_embed_dim),
                                        nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                        nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond_dim = step_embed_dim + obs_cond_dim
        dims = [action_dim, *down_dims]

        def res(i: int, o: int) -> ConditionalResBlock1d:
            return ConditionalResBlock1d(i, o, cond_dim, kernel_size, groups)

        self.down = nn.ModuleList()
        for level, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = level == self.levels - 1
            self.down.append(nn.ModuleList([res(c_in, c_out), res(c_out, c_out),
                                            nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, 2, 1)]))
        self.mid = nn.ModuleList([res(down_dims[-1], down_dims[-1]), res(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for c_out, c_in in reversed(list(zip(down_dims[:-1], down_dims[1:], strict=True))):
            self.up.append(nn.ModuleList([res(2 * c_in, c_out), res(c_out, c_out),
                                          nn.ConvTranspose1d(c_out, c_out, 4, 2, 1)]))
        self.out = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, groups),
                                 nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs_cond: torch.Tensor) -> torch.Tensor:
        horizon = x.shape[1]
        if horizon % (2 ** (self.levels - 1)):
            raise ValueError(f"horizon {horizon} is not divisible by 2^{self.levels - 1} (the UNet halves time at "
                             "every level but the last); use horizon 16 or fewer down_dims")
        cond = F.mish(torch.cat([self.step_embed(t), obs_cond], dim=-1))
        h = x.transpose(1, 2)
        skips = []
        for block1, block2, downsample in self.down:
            h = block2(block1(h, cond), cond)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, cond)
        for block1, block2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(block2(block1(h, cond), cond))
        return self.out(h).transpose(1, 2)
