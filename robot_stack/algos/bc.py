"""`bc_actor`: behaviour cloning of the actor_critic policy's actor (`Policy.compute_loss`: MSE on the arm
dimensions + BCE on the gripper decision) on the RL encoder — the BC baseline the RL algorithms are compared with
on the same network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_stack.algos.base import ALGOS, AlgoConfig, Algorithm


@dataclass
class BCActorConfig(AlgoConfig):
    lr: float = 3e-4                 # PTR pixel_bc actor_lr 3e-4; SERL bc.py learning_rate 3e-4
    weight_decay: float = 0.0


@ALGOS.register("bc_actor")
class BCActor(Algorithm):
    name = "bc_actor"
    config_class = BCActorConfig

    def __init__(self, config: BCActorConfig, policy):
        super().__init__(config, policy)
        self._opt = torch.optim.AdamW(policy.actor_parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self._opt}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.policy.train()
        with self.autocast():
            loss, info = self.policy.compute_loss(batch)
        self._step(self._opt, loss)
        return {f"actor/{k}": v for k, v in info.items()}
