"""`rlpd`: RLPD (Ball, Smith, Kostrikov, Levine 2023) — what SERL and HIL-SERL run on real arms; the online
baseline every practice result is compared with (reference/anchors-2026.md, anchors-systems.md §2.3).

    batch of G·b transitions (the service draws it 50/50 offline/online: RLPD's symmetric sampling = mixing_ratio 0.5)
      ├─► split into G minibatches of b (G = utd, "update-to-data": G critic steps per actor step)
      │     critic step on each: a' ~ π(s'), y = r + γ·mask·(min over a random subset of m target heads Q̄(s', a')
      │                                              − α·log π(a'|s'))      (backup_entropy, REDQ subsample m = 2)
      │                          loss = Σ_i MSE(Q_i(s, a), y) over the E-head LayerNorm ensemble; Polyak τ
      └─► on the last minibatch: actor  E[α log π(ã|s) − mean_i Q_i(s, ã)]  (ensemble mean, as RLPD)
                                 α      −log α·(log π + target_entropy), target −|A|/2
No pessimism (no CQL term): prior data enters only through the 50/50 batches.

Demonstration guidance (robot_stack/algos/demo_guidance.py; both off by default = RLPD as published):
`bc_steps` updates of BC warm start of the actor on successful data while the critic evaluates it, and `bc_weight`
for Q-filtered BC on successful data during the RL updates (Nair et al. 2018).
Reference code:
ikostrikov/rlpd `rlpd/agents/sac/sac_learner.py` (update with utd_ratio, critic subsample, LayerNorm critics,
ensemble 10) and serl_launcher `agents/continuous/sac.py` (`update_high_utd`, temperature_init 1e-2).
The policy must be an actor_critic with num_qs = ensemble size and critic_layer_norm on (learner YAML rlpd).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_stack.algos.base import ALGOS, AlgoConfig, Algorithm, critic_diagnostics
from robot_stack.algos.demo_guidance import q_filtered_bc_loss, warm_start_loss
from robot_stack.types import ACTION_KEY


@dataclass
class RLPDConfig(AlgoConfig):
    """Defaults: RLPD's (γ .99, lr 3e-4 everywhere, τ 5e-3, 10-head ensemble subsampled to 2 in the target, target
    entropy −|A|/2, backup entropy on). `utd` is 20 in RLPD's D4RL runs; the CPU recipe in rlpd.yaml uses less."""

    discount: float = 0.99
    utd: int = 4                         # critic updates per actor update (the batch is split into `utd` parts)
    critic_subsample: int = 2            # m heads of the target ensemble in the min (REDQ); 0 = all heads
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    tau: float = 5e-3
    target_entropy_factor: float = 0.5   # target entropy = −|A|·factor
    backup_entropy: bool = True
    bc_steps: int = 0                    # offline updates whose actor loss is BC on successful data (0 = off)
    bc_weight: float = 0.0               # online Q-filtered BC weight on successful data (0 = off)
    bc_sigma_weight: float = 0.1         # weight of the σ fit (sigma_nll) in the BC warm start
    bc_q_filter: bool = True             # Nair et al.'s Q-filter on the online BC term (False: TD3+BC's plain term)


@ALGOS.register("rlpd")
class RLPD(Algorithm):
    name = "rlpd"
    config_class = RLPDConfig

    def __init__(self, config: RLPDConfig, policy):
        super().__init__(config, policy)
        n_heads = len(policy.critic.heads)
        if config.critic_subsample > n_heads:
            raise ValueError(f"critic_subsample {config.critic_subsample} > the policy's {n_heads} critic heads; "
                             "raise policy_config.num_qs (RLPD: 10) or lower critic_subsample")
        if config.utd < 1:
            raise ValueError(f"utd must be >= 1, got {config.utd}")
        self._actor_opt = torch.optim.Adam(policy.actor_parameters(), lr=config.actor_lr)
        self._critic_opt = torch.optim.Adam(policy.critic_parameters(), lr=config.critic_lr)
        self._alpha_opt = torch.optim.Adam([policy.log_alpha], lr=config.temperature_lr)
        self.target_entropy = -float(policy.free_action_dim) * config.target_entropy_factor

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self._actor_opt, "critic": self._critic_opt, "alpha": self._alpha_opt}

    def _critic_step(self, mb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg, p = self.config, self.policy
        with self.autocast():
            o, o_next = p.prepare_obs(mb), p.prepare_obs(mb, "next.")
            a_data = p.to_policy_action(mb[ACTION_KEY])
            with torch.no_grad():
                mean_n, log_std_n = p.actor_dist(o_next)
                a_next, logp_next = p.sample_from(mean_n, log_std_n, 1)
                target_q = p.critic_q(o_next, a_next, target=True)[..., 0].float()      # (E, B)
                if cfg.critic_subsample:
                    heads = torch.randperm(target_q.shape[0], device=target_q.device)[:cfg.critic_subsample]
                    target_q = target_q[heads]
                next_v = target_q.min(0).values
                if cfg.backup_entropy:
                    next_v = next_v - p.log_alpha.exp() * logp_next[:, 0].float()
                y = mb["reward"].float() + cfg.discount * mb["mask"].float() * next_v
            q = p.critic_q(o, a_data.unsqueeze(1))[..., 0].float()                      # (E, B)
            loss = ((q - y.unsqueeze(0)) ** 2).mean(1).sum()
        self._step(self._critic_opt, loss)
        p.update_target(cfg.tau)
        return {"critic/loss": loss.detach(), "critic/q_data": q.mean().detach(), "critic/target_q": y.mean(),
                "critic/q_ensemble_std": q.std(0).mean().detach()}

    def critic_updates(self, batch: dict[str, torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """`utd` critic steps on consecutive minibatches of the (shuffled) batch -> (last step's metrics, the last
        minibatch, on which the actor steps next)."""
        cfg = self.config
        self.policy.train()
        b = batch[ACTION_KEY].shape[0]
        if b < cfg.utd:
            raise ValueError(f"batch of {b} cannot be split into utd={cfg.utd} minibatches; raise batch_size")
        size = b // cfg.utd
        m: dict[str, torch.Tensor] = {}
        for i in range(cfg.utd):
            mb = {k: v[i * size:(i + 1) * size] for k, v in batch.items()}
            m = self._critic_step(mb)
        return m, mb

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, p = self.config, self.policy
        m, mb = self.critic_updates(batch)
        # Actor and temperature on the last minibatch, against the freshly updated critic (RLPD/SERL order).
        bc_phase = self.train_step < cfg.bc_steps
        with self.autocast():
            o = p.prepare_obs(mb)
            mean, log_std = p.actor_dist(o)
            alpha = p.log_alpha.exp().detach()
            z = p.critic_latent(o).detach()
            actor_terms, logp_new, q_new = p.actor_objective(o, mean, log_std, alpha, z, reduce="mean")
            alpha_loss = -(p.log_alpha * (logp_new.detach() + self.target_entropy)).mean()
            if bc_phase:
                actor_loss, info = warm_start_loss(p, mb, mean, log_std, cfg.bc_sigma_weight)
                m.update(info)
            else:
                actor_loss = actor_terms.mean()
                if cfg.bc_weight > 0:
                    term, info = q_filtered_bc_loss(p, mb, o, mean, log_std, z, q_new, cfg.bc_weight, "mean",
                                                    cfg.bc_q_filter)
                    actor_loss = actor_loss + term
                    m.update(info)
        self._step(self._actor_opt, actor_loss)
        if not bc_phase:   # α tracks the RL actor's entropy; during imitation it waits at its initial value
            self._step(self._alpha_opt, alpha_loss)
        m.update({"actor/loss": actor_loss, "actor/entropy": -logp_new.mean(), "actor/alpha": alpha,
                  "actor/q_pi": q_new.mean(), "actor/log_std": log_std.mean(),
                  "critic/reward": batch["reward"].float().mean(), "actor/bc_phase": torch.tensor(float(bc_phase))})
        return {k: float(v.detach()) for k, v in m.items()}

    def evaluate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Held-out diagnostics (base.critic_diagnostics) against a fixed yardstick of RLPD's backup: every target
        head's min, no subsampling, no entropy; heads averaged for the deterministic action, as RLPD's actor."""
        cfg, p = self.config, self.policy

        def backup(o_next, mean_n, log_std_n):
            a_next, _ = p.sample_from(mean_n, log_std_n, 1)
            next_v = p.critic_q(o_next, a_next, target=True)[..., 0].float().min(0).values
            return batch["reward"].float() + cfg.discount * batch["mask"].float() * next_v

        return critic_diagnostics(p, batch, backup, reduce="mean")
