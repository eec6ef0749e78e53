"""Data-parallel training over torch.distributed (gloo on CPU, nccl on GPUs).

    rank r: own sampler seed (seed, r) ─► algo.update ─► per optimiser: backward ─► all_reduce(grad)/world ─► step
    rank 0 broadcasts the initial weights; only rank 0 writes checkpoints and announces them.

Why not torch.nn.parallel.DistributedDataParallel: one CQL update runs three backward passes (α, actor, critic)
through overlapping sub-graphs of one module and steps four optimisers; DDP's reducer expects one forward/backward
per wrapped module per step. An explicit gradient all-reduce per optimiser gives the same synchronous SGD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from robot_stack.policies.base import dataclass_from_dict


@dataclass
class DistConfig:
    backend: str = "gloo"             # gloo (CPU) | nccl (CUDA)
    init_method: str = "env://"       # env:// (torchrun), tcp://host:port or file:///path
    world_size: int = 1
    rank: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistConfig:
        return dataclass_from_dict(cls, d)


def init_distributed(cfg: DistConfig) -> None:
    if not dist.is_initialized():
        dist.init_process_group(cfg.backend, init_method=cfg.init_method, world_size=cfg.world_size, rank=cfg.rank)


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks (the synchronous data-parallel step)."""
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
