"""Pure loss/target functions of CQL, Cal-QL and PTR's data recipe on plain tensors (unit-tested by hand values).

Every function cites reference/algorithms.md (§0 CQL/Cal-QL core, §1 PTR, §2 Cal-QL notes).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from robot_stack.store.returns import mc_returns  # noqa: F401  (re-exported: one implementation, store + learner)


def cql_regulariser(q_data: torch.Tensor, q_rand: torch.Tensor, q_pi: torch.Tensor, logp_pi: torch.Tensor,
                    action_dim: int, q_next_pi: torch.Tensor | None = None, logp_next_pi: torch.Tensor | None = None,
                    temperature: float = 1.0, mc_lower_bound: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The CQL term of one critic with importance sampling (§0 "CQL term, per critic"):

        cat = [Q(s, a_rand_k) − log(0.5^|A|),  Q(s, a_π(s')_k) − log π(a_π(s')_k|s'),  Q(s, a_π(s)_k) − log π(a_π(s)_k|s)]
        cql_diff = mean_B( T·logsumexp(cat / T) − Q(s, a_data) )

    PTR (`min_q_version=3`, §1) passes no next-state samples. Cal-QL (§0 "the one-line change", §2 note 2): the Q-values
    of the POLICY actions (current and next-state) are clipped from below by the MC return G(s) BEFORE the −log π
    importance weights; random actions are never clipped. `bound_rate` = mean(Q(s, a_π(s)) < G(s)) before the clip.

    q_data (B,), q_rand/q_pi/logp_pi/q_next_pi/logp_next_pi (B, N), mc_lower_bound (B,) -> (cql_diff scalar, metrics).
    """
    info: dict[str, torch.Tensor] = {}
    if mc_lower_bound is not None:
        bound = mc_lower_bound.unsqueeze(-1).expand_as(q_pi)
        info["bound_rate"] = (q_pi < bound).float().mean()
        q_pi = torch.maximum(q_pi, bound)
        if q_next_pi is not None:
            q_next_pi = torch.maximum(q_next_pi, mc_lower_bound.unsqueeze(-1).expand_as(q_next_pi))
    # Uniform density on [−1, 1]^|A| is 0.5^|A|: subtracting its log is the importance weight of a random action.
    parts = [q_rand - action_dim * math.log(0.5)]
    if q_next_pi is not None:
        parts.append(q_next_pi - logp_next_pi)
    parts.append(q_pi - logp_pi)
    cat = torch.cat(parts, dim=-1)
    lse = temperature * torch.logsumexp(cat / temperature, dim=-1)
    info["cql_lse"] = lse.mean()
    return (lse - q_data).mean(), info


def max_q_backup_target(target_q: torch.Tensor, reward: torch.Tensor, mask: torch.Tensor, discount: float
                        ) -> torch.Tensor:
    """TD target with the max-Q backup and no entropy term (§0, `cql_max_target_backup=True`, `backup_entropy=False`):

        y = r + γ·mask·max_j min_i Q̄_i(s', a'_j),   a'_j ~ π(·|s')

    target_q (num_qs, B, n), reward/mask (B,) -> y (B,). mask = 1 − done (PTR: 1 − raw reward with term_as_rew).
    """
    return reward + discount * mask * target_q.min(dim=0).values.max(dim=-1).values


def lagrange_alpha_prime(log_alpha_prime: torch.Tensor) -> torch.Tensor:
    """α' = clip(exp(log α'), 0, 1e6) (§0 Lagrange)."""
    return log_alpha_prime.exp().clamp(0.0, 1e6)


def ptr_rewards(n_steps: int, success: bool, num_final_reward_steps: int = 3, scale: float = 11.0,
                bias: float = -1.0, term_as_rew: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """PTR's reward and mask (§1 "Reward scheme", train_utils.py `is_positive_sample`): the last
    `num_final_reward_steps` transitions of a SUCCESSFUL trajectory are positive (raw 1), the rest 0; then
    r = scale·raw + bias (11r − 1: +10 / −1) and, with term_as_rew, mask = 1 − raw (no bootstrapping there).

    -> (rewards (T,), masks (T,)) float32.
    """
    raw = np.zeros(n_steps, np.float32)
    if success and n_steps:
        raw[-min(num_final_reward_steps, n_steps):] = 1.0
    mask = 1.0 - raw if term_as_rew else np.ones(n_steps, np.float32)
    return (raw * scale + bias).astype(np.float32), mask.astype(np.float32)
