"""The DDPM schedule and DDIM sampler against their closed forms (robot_stack/policies/diffusion/scheduler.py)."""

from __future__ import annotations

import math

import pytest
import torch

from robot_stack.policies.diffusion.scheduler import NoiseSchedule


def test_squared_cosine_schedule_matches_its_closed_form():
    T, s = 100, 0.008
    sched = NoiseSchedule(T, "squaredcos_cap_v2")

    def f(tau: float) -> float:   # Nichol & Dhariwal 2021 eq. 17
        return math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2

    expected = torch.tensor([f((i + 1) / T) / f(0.0) for i in range(T)], dtype=torch.float64)
    # ᾱ_i = Π(1 − β_j) is the closed form wherever the 0.999 cap does not bite (it bites at the last step only).
    capped = sched.betas >= 0.999 - 1e-12
    assert capped.sum() <= 1 and (not capped.any() or bool(capped[-1]))
    torch.testing.assert_close(sched.alphas_cumprod[:-1], expected[:-1], rtol=1e-10, atol=1e-12)
    assert torch.all(sched.betas > 0) and torch.all(sched.betas <= 0.999)
    assert torch.all(sched.betas[1:] >= sched.betas[:-1])                  # noise is added ever faster
    assert torch.all(sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1])
    assert sched.alphas_cumprod[0] > 0.999 and sched.alphas_cumprod[-1] < 1e-4   # x_T is (nearly) pure noise


def test_linear_schedule_and_unknown_name():
    sched = NoiseSchedule(10, "linear", beta_start=1e-3, beta_end=1e-2)
    torch.testing.assert_close(sched.betas, torch.linspace(1e-3, 1e-2, 10, dtype=torch.float64))
    torch.testing.assert_close(sched.alphas_cumprod, torch.cumprod(1 - sched.betas, 0))
    with pytest.raises(ValueError, match="squaredcos_cap_v2"):
        NoiseSchedule(10, "cosine_typo")


def test_add_noise_is_the_forward_marginal():
    """x_t = √ᾱ x_0 + √(1−ᾱ) ε: for many ε its mean is √ᾱ x_0 and its variance 1 − ᾱ (Ho et al. eq. 4)."""
    sched = NoiseSchedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7)
    t = torch.full((20000,), 40, dtype=torch.long)
    xt = sched.add_noise(x0, torch.randn(x0.shape, generator=g), t)
    a = float(sched.alphas_cumprod[40])
    assert abs(float(xt.mean()) - math.sqrt(a) * 0.7) < 0.02
    assert abs(float(xt.var()) - (1 - a)) < 0.02


def test_inference_timesteps_leading_spacing():
    sched = NoiseSchedule(100)
    assert sched.inference_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert sched.inference_timesteps(100) == list(range(99, -1, -1))
    assert sched.alpha_bar_prev(0, 10) == 1.0                                   # set_alpha_to_one
    assert sched.alpha_bar_prev(90, 10) == float(sched.alphas_cumprod[80])
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        sched.inference_timesteps(101)


def test_ddim_eta_one_over_all_steps_is_ddpm_posterior_variance():
    """σ_t² with η = 1, S = T equals β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (Ho et al. eq. 7): DDIM(η=1) is DDPM."""
    sched = NoiseSchedule(100)
    a, b = sched.alphas_cumprod, sched.betas
    for t in (1, 10, 50, 99):
        posterior = float((1 - a[t - 1]) / (1 - a[t]) * b[t])
        assert math.isclose(sched.ddim_sigma(t, 100, eta=1.0) ** 2, posterior, rel_tol=1e-9)
    assert sched.ddim_sigma(50, 100, eta=0.0) == 0.0


@pytest.mark.parametrize("steps", [1, 10, 100])
def test_ddim_with_the_true_noise_recovers_x0_exactly(steps):
    """An oracle ε_θ (the ε that relates x_t to a fixed x_0) makes deterministic DDIM land on that x_0 from any x_T."""
    sched = NoiseSchedule(100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 16, 7, generator=g) * 1.6 - 0.8
    x = torch.randn(3, 16, 7, generator=g)
    for t in sched.inference_timesteps(steps):
        a = float(sched.alphas_cumprod[t])
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = sched.ddim_step(eps, t, x, steps, eta=0.0)
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)


def test_ddim_is_deterministic_and_stochastic_step_needs_noise():
    sched = NoiseSchedule(100)
    x, eps = torch.randn(2, 8, 7), torch.randn(2, 8, 7)
    torch.testing.assert_close(sched.ddim_step(eps, 50, x, 10), sched.ddim_step(eps, 50, x, 10), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs noise"):
        sched.ddim_step(eps, 50, x, 10, eta=1.0)
    out = sched.ddim_step(eps, 0, x, 10, clip_sample=True)   # the last step returns the clipped x̂_0
    assert float(out.abs().max()) <= 1.0
