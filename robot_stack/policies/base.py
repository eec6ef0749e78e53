"""Policy interface (DESIGN.md §3 "Policy interface"): `XConfig` dataclass registered by name + `X(Policy)`.

Every policy works in physical units at its boundary and normalises inside, so the runner, the learner
and the ROS nodes never branch on policy names:

    obs {observation.images.<cam>: uint8 (H, W, 3), observation.state: float32 (S,)}
        └─► Policy.select_action(obs) ──► float32 (A,) physical ee_delta action (gripper in [0, 1])
    batch {same keys with a leading B axis, action: float32 (B, A)}
        └─► Policy.compute_loss(batch) ──► scalar loss (the learner's only call into the policy)
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import typing
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from robot_stack.policies.normalizer import Normalizer
from robot_stack.registry import Registry

POLICIES: Registry[type[Policy]] = Registry("policy")
C = TypeVar("C")

# Modules that register the built-in policies; imported on first lookup so that
# `import robot_stack.policies` stays cheap and a checkpoint can name any of them.
_BUILTIN_POLICY_MODULES = ("robot_stack.policies.bc_conv", "robot_stack.policies.actor_critic",
                           "robot_stack.policies.diffusion", "robot_stack.policies.openvla")


@dataclasses.dataclass
class PolicyConfig:
    """Base of every policy config. Subclasses add their own fields; all fields must be JSON-able."""

    cameras: tuple[str, ...] = ("front", "wrist")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        return dataclass_from_dict(cls, d)


def dataclass_from_dict(cls: type[C], d: dict[str, Any]) -> C:
    """Build a config dataclass from JSON/YAML values; unknown keys are refused (a typo must not silently
    train with a default)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    # JSON and YAML have no tuples; convert lists back where the field is declared as a tuple.
    return cls(**{k: tuple(v) if isinstance(v, list) and typing.get_origin(hints[k]) is tuple else v
                  for k, v in d.items()})


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def load_builtin_policies() -> None:
    for mod in _BUILTIN_POLICY_MODULES:
        importlib.import_module(mod)


def policy_class(name: str) -> type[Policy]:
    """The registered Policy class for `name` (e.g. 'bc_conv'); the error lists the known names."""
    load_builtin_policies()
    return POLICIES.get(name)


def make_policy(name: str, config: PolicyConfig | dict[str, Any] | None, normalizer: Normalizer) -> Policy:
    """Build a registered policy from its name and config (a dataclass or a plain dict from YAML/JSON)."""
    cls = policy_class(name)
    if config is None:
        config = cls.config_class()
    elif isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    elif not isinstance(config, cls.config_class):
        raise TypeError(f"policy {name!r} takes a {cls.config_class.__name__}, got {type(config).__name__}")
    return cls(config, normalizer)


class Policy(torch.nn.Module, abc.ABC):
    """A learnable policy: physical units outside, normalised units inside.

    The normaliser is JSON (normalizer.json in a checkpoint), not part of the state dict, so its values
    are registered as non-persistent buffers: they move with `.to(device)` but are not saved twice.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[PolicyConfig]]

    def __init__(self, config: PolicyConfig, normalizer: Normalizer):
        super().__init__()
        self.config = config
        self.normalizer = normalizer
        self._register_normalizer_buffers(normalizer)

    def _register_normalizer_buffers(self, normalizer: Normalizer) -> None:
        for name, value in normalizer.tensors().items():
            self.register_buffer(f"_norm_{name}", torch.as_tensor(value, dtype=torch.float32), persistent=False)

    def set_normalizer(self, normalizer: Normalizer) -> None:
        """Swap dataset statistics (the learner refits them as data grows); weights are kept."""
        self.normalizer = normalizer
        for name, value in normalizer.tensors().items():
            setattr(self, f"_norm_{name}", torch.as_tensor(value, dtype=torch.float32, device=self.device))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def observation_keys(self) -> list[str]:
        """The flat observation keys this policy reads; the checkpoint schema lists exactly these."""
        from robot_stack.types import STATE_KEY, image_key

        return [image_key(c) for c in self.config.cameras] + [STATE_KEY]

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical (low, high) the policy can emit, (A,) each; the runner checks first actions against it."""
        return self.normalizer.action_bounds()

    def reset(self) -> None:
        """Clear per-episode state (observation history, action chunks). Stateless policies do nothing."""

    @abc.abstractmethod
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One unbatched observation (see module docstring) -> float32 (A,) action in physical units."""

    @abc.abstractmethod
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Batched physical-unit data (B, ...) on `self.device` -> (scalar loss, named float metrics)."""
