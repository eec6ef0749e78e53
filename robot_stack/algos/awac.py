"""`awac`: advantage-weighted actor-critic (Nair, Gupta, Dalal, Levine 2020, "AWAC: Accelerating Online
Reinforcement Learning with Offline Datasets") on RLPD's critic: demonstrations + online practice, where the
actor must improve on a BC-level start without first unlearning it.

    critic  exactly RLPD's (robot_stack/algos/rlpd.py): G = utd minibatches, y = r + γ·mask·min over a random
            subset of target heads Q̄(s', a'), a' ~ π(s'); no entropy in the backup (AWAC has none)
    actor   on the last minibatch:  A(s, a) = mean_i Q_i(s, a) − V(s),  V(s) = E_{ã~π} mean_i Q_i(s, ã)
                                    (one arm sample, the discrete gripper's exact expectation)
            w = B·softmax(A / λ) over the batch, capped at `max_weight`
            loss = mean_b w_b·[BC(s_b, a_b) + σ_w·σ-NLL]      (ActorCriticPolicy.bc_terms: MSE on the arm dims,
                                                              BCE on the gripper logit, σ fitted to the spread)
No SAC temperature: the actor never maximises Q directly, so it never leaves the actions the buffer holds.

Why it is here (benchmarks/results/learning_findings.md, diag_rlpd_from_bc.py): from a BC start on 20 demos,
500 updates of RLPD's actor loss on the demos alone (no online data) took Q(s, a_data) from −18.0 (MC return
−18.3) to −2.5, the actor to the corners of the action box (|π − a| ≈ 0.9 in normalised units) and success from
5/20 to 0/20: the actor exploits the critic's extrapolation to actions no data covers, and online it never
recovers. AWAC's actor is a weighted likelihood of buffer actions, so the critic is only asked about actions
that the buffer (demos, then the policy's own attempts) holds.

Reference code: CORL `algorithms/offline/awac.py` (exp(A/λ), λ = 1, weights clamped at 100, the actor a weighted
log-likelihood of data actions, Q target with a' ~ π); rlkit `awac_trainer.py` (batch-normalised weights,
softmax over the batch). The weighted BC uses the project's BC loss (bc_terms) rather than the tanh-Gaussian
NLL of the mean, for the reason compute_loss's docstring gives (learning review F1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_stack.algos.base import ALGOS
from robot_stack.algos.demo_guidance import warm_start_loss
from robot_stack.algos.rlpd import RLPD, RLPDConfig
from robot_stack.types import ACTION_KEY


@dataclass
class AWACConfig(RLPDConfig):
    """RLPD's critic settings, no entropy in the backup, and the AWAC actor's temperature λ and weight cap."""

    backup_entropy: bool = False
    awac_lambda: float = 1.0             # A / λ in the weights (CORL awac_lambda 1.0)
    max_weight: float = 100.0            # cap on each weight (CORL exp_adv_max 100)
    # False: transitions of failed episodes get weight 0 in the actor (a diagnostic: is the dip after the first
    # online round the actor imitating its own failed attempts?). The critic always learns from everything.
    imitate_failures: bool = True


@ALGOS.register("awac")
class AWAC(RLPD):
    name = "awac"
    config_class = AWACConfig

    def __init__(self, config: AWACConfig, policy):
        if config.awac_lambda <= 0:
            raise ValueError(f"awac_lambda must be > 0, got {config.awac_lambda}")
        super().__init__(config, policy)

    def advantage_weights(self, o, mb, mean, log_std, z) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B,) weights B·softmax(A/λ) capped at max_weight, and metrics; no gradient."""
        cfg, p = self.config, self.policy
        with torch.no_grad():
            q_data = p.critic_q(o, p.to_policy_action(mb[ACTION_KEY]).unsqueeze(1), z=z)[..., 0].mean(0)
            _, _, v = p.actor_objective(o, mean, log_std, torch.zeros(()), z, reduce="mean")
            adv = q_data - v
            w = (torch.softmax(adv / cfg.awac_lambda, 0) * adv.shape[0]).clamp(max=cfg.max_weight)
        return w, {"actor/advantage": adv.mean(), "actor/advantage_std": adv.std(), "actor/weight_max": w.max(),
                   "actor/v": v.mean()}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, p = self.config, self.policy
        m, mb = self.critic_updates(batch)
        bc_phase = self.train_step < cfg.bc_steps
        with self.autocast():
            o = p.prepare_obs(mb)
            mean, log_std = p.actor_dist(o)
            if bc_phase:
                actor_loss, info = warm_start_loss(p, mb, mean, log_std, cfg.bc_sigma_weight)
            else:
                z = p.critic_latent(o).detach()
                w, info = self.advantage_weights(o, mb, mean, log_std, z)
                if not cfg.imitate_failures and "success" in mb:
                    w = w * mb["success"].to(w.dtype)
                bc, sigma_nll = p.bc_terms(mean, log_std, p.to_policy_action(mb[ACTION_KEY]))
                actor_loss = (w * (bc + cfg.bc_sigma_weight * sigma_nll)).mean()
                info["actor/bc"] = bc.mean()
            m.update(info)
        self._step(self._actor_opt, actor_loss)
        m.update({"actor/loss": actor_loss, "actor/log_std": log_std.mean(), "actor/bc_phase": torch.tensor(float(bc_phase)),
                  "critic/reward": batch["reward"].float().mean()})
        return {k: float(v.detach()) for k, v in m.items()}
