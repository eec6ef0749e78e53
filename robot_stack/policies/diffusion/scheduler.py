"""DDPM noise schedule and the DDIM sampler (no `diffusers` dependency: ~100 lines with the equations cited).

    train:   x_0 (B, T_p, A) in [-1, 1], t ~ U{0..T-1}, ε ~ N(0, I)
             x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε                                        (Ho et al. 2020, eq. 4)
             loss = ‖ε − ε_θ(x_t, t, obs)‖²                                        (Ho et al. 2020, eq. 14)
    sample:  x_T ~ N(0, I); for t in τ_S > … > τ_1 (S of the T steps, "leading" spacing τ_i = i·⌊T/S⌋):
             x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t, clipped to [-1, 1] (diffusion_policy's clip_sample)
             σ_t = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)                  (Song et al. 2021, eq. 16)
             x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ_t²) ε_θ + σ_t z             (Song et al. 2021, eq. 12)
             with ᾱ_prev = 1 after the last step (diffusers' set_alpha_to_one), so the result is x̂_0.

η = 0 is DDIM (deterministic given x_T); η = 1 with S = T is DDPM ancestral sampling, because σ_t² is then the
posterior variance β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (Ho et al. 2020, eq. 7) — one sampler covers both.

The "squaredcos_cap_v2" schedule (Nichol & Dhariwal 2021, eq. 17, as diffusion_policy configures diffusers):
ᾱ(τ) = cos²(((τ + s)/(1 + s))·π/2), s = 0.008, and β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999) for i = 0..T-1,
so ᾱ_i = Π_{j≤i}(1 − β_j) equals ᾱ((i+1)/T)/ᾱ(0) wherever the cap does not bite (only the last step).
"""

from __future__ import annotations

import math

import torch

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")
COSINE_OFFSET_S = 0.008        # Nichol & Dhariwal 2021 §3.2: keeps β_0 from being vanishingly small
MAX_BETA = 0.999               # the cap of eq. 17's β, against the singularity at τ = 1


def cosine_alpha_bar(tau: torch.Tensor) -> torch.Tensor:
    """ᾱ(τ) of the squared-cosine schedule, τ ∈ [0, 1] (unnormalised: ᾱ(0) is slightly below 1)."""
    return torch.cos((tau + COSINE_OFFSET_S) / (1.0 + COSINE_OFFSET_S) * math.pi / 2.0) ** 2


class NoiseSchedule:
    """β_t, ᾱ_t for t = 0..T-1 (float64 for the arithmetic, float32 where it meets a network) + the DDIM sampler.

    num_train_timesteps: T (100 in diffusion_policy). beta_start/beta_end: the linear schedule's ends only.
    """

    def __init__(self, num_train_timesteps: int = 100, beta_schedule: str = "squaredcos_cap_v2",
                 beta_start: float = 1e-4, beta_end: float = 0.02):
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        if beta_schedule == "squaredcos_cap_v2":
            i = torch.arange(num_train_timesteps, dtype=torch.float64)
            ratio = cosine_alpha_bar((i + 1) / num_train_timesteps) / cosine_alpha_bar(i / num_train_timesteps)
            betas = (1.0 - ratio).clamp(max=MAX_BETA)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        else:
            raise ValueError(f"beta_schedule {beta_schedule!r}; known: {BETA_SCHEDULES}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    # ---- training ---------------------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) sample (Ho et al. eq. 4). x0, noise: (B, ...); t: (B,) long -> x_t (B, ...)."""
        a_bar = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return a_bar.sqrt() * x0 + (1.0 - a_bar).sqrt() * noise

    # ---- sampling ---------------------------------------------------------------------------------
    def inference_timesteps(self, num_inference_steps: int) -> list[int]:
        """The S timesteps the sampler visits, descending: τ_i = i·⌊T/S⌋ (diffusers' "leading" spacing)."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}] (the training "
                             f"steps), got {num_inference_steps}")
        ratio = self.num_train_timesteps // num_inference_steps
        return [i * ratio for i in reversed(range(num_inference_steps))]

    def alpha_bar_prev(self, t: int, num_inference_steps: int) -> float:
        """ᾱ of the step after t on the sampler's grid; 1 after the last one."""
        prev = t - self.num_train_timesteps // num_inference_steps
        return float(self.alphas_cumprod[prev]) if prev >= 0 else 1.0

    def ddim_sigma(self, t: int, num_inference_steps: int, eta: float) -> float:
        """σ_t of Song et al. eq. 16 for one sampler step from t."""
        a_t, a_prev = float(self.alphas_cumprod[t]), self.alpha_bar_prev(t, num_inference_steps)
        return eta * math.sqrt((1.0 - a_prev) / (1.0 - a_t)) * math.sqrt(max(0.0, 1.0 - a_t / a_prev))

    def ddim_step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, num_inference_steps: int, eta: float = 0.0,
                  noise: torch.Tensor | None = None, clip_sample: bool = True) -> torch.Tensor:
        """One step x_t -> x_prev (Song et al. eq. 12). eps, x_t, noise: (B, ...). noise is needed when η > 0."""
        a_t, a_prev = float(self.alphas_cumprod[t]), self.alpha_bar_prev(t, num_inference_steps)
        x0_hat = (x_t - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
        if clip_sample:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        sigma = self.ddim_sigma(t, num_inference_steps, eta)
        x_prev = math.sqrt(a_prev) * x0_hat + math.sqrt(max(0.0, 1.0 - a_prev - sigma ** 2)) * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("ddim_step with eta > 0 needs noise (the σ_t z term); pass torch.randn_like(x_t)")
            x_prev = x_prev + sigma * noise
        return x_prev
