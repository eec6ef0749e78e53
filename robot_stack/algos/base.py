"""Algorithm interface: `XConfig` dataclass registered by name in ALGOS + `X(Algorithm)` (DESIGN.md §4.2).

    learner service ─► algo.update(batch) ─► losses, optimiser steps on the policy's parameter groups ─► metrics
                     ─► algo.optimizer_state() / load_optimizer_state() ─► saved next to each checkpoint (safetensors)

An algorithm never owns networks: it trains a registered Policy (so the checkpoint is the policy's) and owns only
its optimisers. `grad_sync` (set by the service under torch.distributed) averages gradients across ranks before
every optimiser step.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from robot_stack.policies.base import Policy, dataclass_from_dict
from robot_stack.registry import Registry
from robot_stack.types import ACTION_KEY

ALGOS: Registry[type[Algorithm]] = Registry("algorithm")
_BUILTIN_ALGO_MODULES = ("robot_stack.algos.cql", "robot_stack.algos.bc", "robot_stack.algos.rlpd",
                         "robot_stack.algos.awac")


@dataclasses.dataclass
class AlgoConfig:
    discount: float = 0.99            # γ: also used for MC returns and the reward recipe of the data
    policy_type: str = "actor_critic"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlgoConfig:
        return dataclass_from_dict(cls, d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_builtin_algos() -> None:
    for mod in _BUILTIN_ALGO_MODULES:
        importlib.import_module(mod)


def algo_class(name: str) -> type[Algorithm]:
    load_builtin_algos()
    return ALGOS.get(name)


def make_algo(name: str, config: AlgoConfig | dict[str, Any] | None, policy: Policy) -> Algorithm:
    cls = algo_class(name)
    cfg = cls.config_class() if config is None else (cls.config_class.from_dict(config) if isinstance(config, dict)
                                                      else config)
    return cls(cfg, policy)


GradSync = Callable[[list[torch.nn.Parameter]], None]


class Algorithm(abc.ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[AlgoConfig]]
    needs_mc_returns: ClassVar[bool] = False

    def __init__(self, config: AlgoConfig, policy: Policy):
        self.config = config
        self.policy = policy
        self.grad_sync: GradSync | None = None
        self.amp_dtype: torch.dtype | None = None   # bf16 autocast on CUDA (set by the service)
        self.train_step = 0   # updates done before this one (set by the service: survives a resume)

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers (names are the keys of the saved optimiser state)."""

    @abc.abstractmethod
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on a batch (B, ...) -> metrics (name -> float, '/'-grouped for tensorboard)."""

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss-free diagnostics on a held-out batch (overfitting signals); default: none."""
        return {}

    def reset_optimizers(self) -> None:
        """Fresh optimiser moments (the online phase's optional optimiser reset)."""
        for opt in self.optimizers().values():
            opt.state.clear()

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync([p for g in opt.param_groups for p in g["params"]])
        opt.step()

    def autocast(self):
        device = self.policy.device
        return torch.autocast(device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None)


@torch.no_grad()
def critic_diagnostics(policy: Any, batch: dict[str, torch.Tensor],
                       backup: Callable[[dict[str, Any], torch.Tensor, torch.Tensor], torch.Tensor],
                       reduce: str = "min") -> dict[str, float]:
    """Held-out critic diagnostics of an actor-critic policy, without augmentation (the service compares validation
    and training episodes: Q rising on train but not on validation is the offline-RL overfitting signal).

    Q(s, a_data) over every head, TD error against `backup(o_next, mean_next, log_std_next)` -> y (B,) (each
    algorithm's own target), Q of the deterministic action (gripper as its binary decision; heads reduced by
    `reduce`: min as CQL's actor, mean as RLPD's) and the batch's MC return."""
    p = policy
    was = p.training
    p.eval()
    try:
        o, o_next = p.prepare_obs(batch), p.prepare_obs(batch, "next.")
        q = p.critic_q(o, p.to_policy_action(batch[ACTION_KEY]).unsqueeze(1))[..., 0].float()
        y = backup(o_next, *p.actor_dist(o_next))
        mean, _ = p.actor_dist(o)
        q_pi = p.critic_q(o, p.binarize_gripper(p.fix_actions(torch.tanh(mean))).unsqueeze(1))[..., 0]
        q_pi = q_pi.min(0).values if reduce == "min" else q_pi.mean(0)
    finally:
        p.train(was)
    out = {"q_data": float(q.mean()), "td_error": float(((q - y) ** 2).mean()), "q_pi_det": float(q_pi.mean())}
    if "mc_return" in batch:
        out["mc_return"] = float(batch["mc_return"].float().mean())
    return out
