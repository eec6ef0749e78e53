"""Diffusion policy (DDPM training, DDIM sampling of action chunks): see robot_stack/policies/diffusion/policy.py."""

from robot_stack.policies.diffusion.policy import DiffusionConfig, DiffusionPolicy
from robot_stack.policies.diffusion.scheduler import NoiseSchedule

__all__ = ["DiffusionConfig", "DiffusionPolicy", "NoiseSchedule"]
