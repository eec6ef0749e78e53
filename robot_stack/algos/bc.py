"""`bc_actor`: behaviour cloning of the actor_critic policy's actor (its tanh-Gaussian NLL, `Policy.compute_loss`)
on the RL image encoder — the BC baseline the RL algorithms are compared with on the same network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_stack.algos.base import ALGOS, AlgoConfig, Algorithm


@dataclass
class BCActorConfig(AlgoConfig):
    lr: float = 1e-4                 # the RL actor's lr (§0), so BC and RL actors are comparable
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
