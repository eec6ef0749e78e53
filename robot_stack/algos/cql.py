"""`cql` (as PTR uses it, §1) and `calql` (§0/§2): conservative SAC on the actor_critic policy.

    batch ─► prepare obs / next obs (crop + jitter) ─► actor: a~π(s), loss E[α log π − min_i Q_i(s, a)]  (critic latent
    │                                                   detached: separate encoders, the actor trains only its own)
    │                                               ─► α:    loss −log α·(log π + target_entropy), target −|A|·factor
    └─► critic: y = r + γ·mask·max_j min_i Q̄_i(s', a'_j)  (n_backup_actions next actions, §0 max-Q backup)
                loss_i = MSE(Q_i(s, a), y) + α'·α_cql·(cql_diff_i − τ)   (Lagrange)  or  + α_cql·cql_diff_i (fixed)
                cql_diff_i from losses.cql_regulariser over cql_n_actions random + π(s) [+ π(s')] actions;
                Cal-QL: policy-action Q clipped below by the batch's MC returns (losses.cql_regulariser)
            ─► α':   loss −½ Σ_i α'·α_cql·(cql_diff_i − τ)  ─► Polyak target update τ
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robot_stack.algos.base import ALGOS, AlgoConfig, Algorithm, critic_diagnostics
from robot_stack.algos.demo_guidance import q_filtered_bc_loss, warm_start_loss
from robot_stack.algos.losses import cql_regulariser, lagrange_alpha_prime, max_q_backup_target
from robot_stack.types import ACTION_KEY


@dataclass
class CQLConfig(AlgoConfig):
    """Defaults: PTR's reference command (§1): α_cql 10 fixed, γ 0.96, 4 random + 4 π(s) actions (min_q_version 3),
    max-Q backup over 4 next actions, actor lr 1e-4, critic/temperature lr 3e-4, τ 5e-3, target entropy −|A|."""

    discount: float = 0.96
    cql_alpha: float = 10.0
    cql_n_actions: int = 4
    cql_next_actions: bool = False          # PTR min_q_version=3 has no next-state policy samples
    cql_temperature: float = 1.0
    n_backup_actions: int = 4
    lagrange: bool = False
    target_action_gap: float = 0.8          # τ of the Lagrange form (Cal-QL AntMaze)
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    alpha_prime_lr: float = 3e-4
    tau: float = 5e-3
    target_entropy_factor: float = 1.0      # target entropy = −|A|·factor (SERL/RLPD: 0.5)
    calql: bool = False                     # clip policy-action Q by MC returns (Cal-QL)
    # Demonstration guidance (robot_stack/algos/demo_guidance.py), 0 = off as in the JAX Cal-QL/PTR references:
    # BC warm start of the actor on successful transitions for the first bc_steps updates while the critic trains
    # as usual (CQL's own code: policy_eval_start; CORL cql.py/cal_ql.py bc_steps), and Q-filtered BC on successful
    # transitions during the RL updates with weight bc_weight (Nair et al. 2018).
    bc_steps: int = 0
    bc_weight: float = 0.0
    bc_sigma_weight: float = 0.1
    bc_q_filter: bool = True


@dataclass
class CalQLConfig(CQLConfig):
    """Cal-QL reference (§0 table, Adroit column; §2): γ 0.99, α 1 fixed (set lagrange/cql_alpha 5/gap 0.8 for
    AntMaze), 10 CQL actions including next-state samples, max-Q backup over 10."""

    discount: float = 0.99
    cql_alpha: float = 1.0
    cql_n_actions: int = 10
    cql_next_actions: bool = True
    n_backup_actions: int = 10
    calql: bool = True


@ALGOS.register("cql")
class CQL(Algorithm):
    name = "cql"
    config_class = CQLConfig

    def __init__(self, config: CQLConfig, policy):
        super().__init__(config, policy)
        self.needs_mc_returns = config.calql
        self._actor_opt = torch.optim.Adam(policy.actor_parameters(), lr=config.actor_lr)
        self._critic_opt = torch.optim.Adam(policy.critic_parameters(), lr=config.critic_lr)
        self._alpha_opt = torch.optim.Adam([policy.log_alpha], lr=config.temperature_lr)
        self._alpha_prime_opt = torch.optim.Adam([policy.log_alpha_prime], lr=config.alpha_prime_lr)
        self.target_entropy = -float(policy.free_action_dim) * config.target_entropy_factor

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self._actor_opt, "critic": self._critic_opt, "alpha": self._alpha_opt,
                "alpha_prime": self._alpha_prime_opt}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, p = self.config, self.policy
        p.train()
        m: dict[str, torch.Tensor] = {}
        with self.autocast():
            o, o_next = p.prepare_obs(batch), p.prepare_obs(batch, "next.")
            a_data = p.to_policy_action(batch[ACTION_KEY])
            b, a_dim = a_data.shape

            # ---- actor and temperature (SAC; §0 "Actor loss") ----
            mean, log_std = p.actor_dist(o)
            alpha = p.log_alpha.exp().detach()
            z = p.critic_latent(o)
            actor_terms, logp_new, q_new = p.actor_objective(o, mean, log_std, alpha, z.detach(), reduce="min")
            bc_phase = self.train_step < cfg.bc_steps
            if bc_phase:
                actor_loss, info = warm_start_loss(p, batch, mean, log_std, cfg.bc_sigma_weight)
                m.update(info)
            else:
                actor_loss = actor_terms.mean()
                if cfg.bc_weight > 0:
                    term, info = q_filtered_bc_loss(p, batch, o, mean, log_std, z.detach(), q_new, cfg.bc_weight,
                                                    "min", cfg.bc_q_filter)
                    actor_loss = actor_loss + term
                    m.update(info)
            alpha_loss = -(p.log_alpha * (logp_new.detach() + self.target_entropy)).mean()

            # ---- critic ----
            with torch.no_grad():
                mean_n, log_std_n = p.actor_dist(o_next)
                a_next, _ = p.sample_from(mean_n, log_std_n, cfg.n_backup_actions)
                target_q = p.critic_q(o_next, a_next, target=True)
                y = max_q_backup_target(target_q.float(), batch["reward"].float(), batch["mask"].float(), cfg.discount)
                a_cur, logp_cur = p.sample_from(mean.detach(), log_std.detach(), cfg.cql_n_actions)
                if cfg.cql_next_actions:
                    a_nxt, logp_nxt = p.sample_from(mean_n, log_std_n, cfg.cql_n_actions)
            # Uniform over the dims the policy chooses (a reduced action space holds the others at physical 0).
            a_rand = p.fix_actions(torch.empty(b, cfg.cql_n_actions, a_dim, device=a_data.device).uniform_(-1.0, 1.0))
            # One critic pass over every action set for this latent: (num_qs, B, 1 + N + N [+ N]).
            sets = [a_data.unsqueeze(1), a_rand, a_cur] + ([a_nxt] if cfg.cql_next_actions else [])
            q_all = p.critic_q(o, torch.cat(sets, dim=1), z=z).float()
            n = cfg.cql_n_actions
            q_data, q_rand, q_cur = q_all[..., 0], q_all[..., 1:1 + n], q_all[..., 1 + n:1 + 2 * n]
            q_nxt = q_all[..., 1 + 2 * n:] if cfg.cql_next_actions else None
            bound = batch["mc_return"].float() if cfg.calql else None
            td_losses, diffs, bound_rates, lses = [], [], [], []
            for i in range(q_all.shape[0]):
                diff, info = cql_regulariser(q_data[i], q_rand[i], q_cur[i], logp_cur.float(), p.free_action_dim,
                                             None if q_nxt is None else q_nxt[i],
                                             logp_nxt.float() if cfg.cql_next_actions else None,
                                             cfg.cql_temperature, bound)
                td_losses.append(F.mse_loss(q_data[i], y))
                diffs.append(diff)
                lses.append(info["cql_lse"])
                if "bound_rate" in info:
                    bound_rates.append(info["bound_rate"])
            diff_sum = torch.stack(diffs).sum()
            if cfg.lagrange:
                alpha_prime = lagrange_alpha_prime(p.log_alpha_prime)
                cql_loss = alpha_prime.detach() * cfg.cql_alpha * (diff_sum - len(diffs) * cfg.target_action_gap)
                alpha_prime_loss = -0.5 * alpha_prime * cfg.cql_alpha * (diff_sum.detach()
                                                                         - len(diffs) * cfg.target_action_gap)
            else:
                alpha_prime = torch.ones(())
                cql_loss = cfg.cql_alpha * diff_sum
                alpha_prime_loss = None
            critic_loss = torch.stack(td_losses).sum() + cql_loss

        if not bc_phase:   # α tracks the RL actor's entropy; during imitation it waits at its initial value
            self._step(self._alpha_opt, alpha_loss)
        self._step(self._actor_opt, actor_loss)
        self._step(self._critic_opt, critic_loss)   # zero_grad first: drops the actor loss's grads on the heads
        if alpha_prime_loss is not None:
            self._step(self._alpha_prime_opt, alpha_prime_loss)
        p.update_target(cfg.tau)

        m.update({"actor/loss": actor_loss, "actor/entropy": -logp_new.mean(), "actor/alpha": alpha,
                  "actor/alpha_loss": alpha_loss, "actor/q_pi": q_new.mean(), "actor/log_std": log_std.mean(),
                  "critic/loss": critic_loss, "critic/td_loss": torch.stack(td_losses).mean(),
                  "critic/q_data": q_data.mean(), "critic/q_data_std": q_data.std(), "critic/target_q": y.mean(),
                  "critic/q_rand": q_rand.mean(), "critic/q_pi_current": q_cur.mean(),
                  "critic/cql_diff": torch.stack(diffs).mean(), "critic/cql_lse": torch.stack(lses).mean(),
                  "critic/alpha_prime": alpha_prime, "critic/reward": batch["reward"].float().mean(),
                  "actor/bc_phase": torch.tensor(float(bc_phase))})
        if q_nxt is not None:
            m["critic/q_pi_next"] = q_nxt.mean()
        if bound_rates:
            m["critic/bound_rate"] = torch.stack(bound_rates).mean()
            m["critic/mc_return"] = bound.mean()
        if alpha_prime_loss is not None:
            m["critic/alpha_prime_loss"] = alpha_prime_loss
        return {k: float(v.detach()) for k, v in m.items()}

    def evaluate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Held-out diagnostics (base.critic_diagnostics) against CQL's own max-backup target."""
        cfg, p = self.config, self.policy

        def backup(o_next, mean_n, log_std_n):
            a_next, _ = p.sample_from(mean_n, log_std_n, cfg.n_backup_actions)
            return max_q_backup_target(p.critic_q(o_next, a_next, target=True).float(), batch["reward"].float(),
                                       batch["mask"].float(), cfg.discount)

        return critic_diagnostics(p, batch, backup, reduce="min")


@ALGOS.register("calql")
class CalQL(CQL):
    name = "calql"
    config_class = CalQLConfig
    needs_mc_returns = True
