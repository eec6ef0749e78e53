"""Demonstration guidance for the actor of an actor-critic algorithm (RLPD, CQL, Cal-QL), shared so every
algorithm imitates the same way:

    warm start (bc_steps)  actor loss = BC on the batch's SUCCESSFUL transitions (ActorCriticPolicy.bc_terms: MSE on
                           the arm dims + BCE on the gripper logit, and σ fitted to the data's spread around the
                           imitated mean) while the critic trains as usual, i.e. evaluates that BC policy.
                           CQL's own code (policy_eval_start), CORL's bc_steps; IBRL (Hu et al. 2023) starts RL from
                           a BC policy because a sparse reward carries no signal until exploration succeeds once.
    Q-filtered BC (bc_weight)  actor loss += w·mean|Q(s, ã)|·BC over successful transitions whose data action the
                           critic still rates above the actor's own deterministic action (the Q-filter of Nair et al.
                           2018, "Overcoming exploration in RL with demonstrations", sparse-reward block stacking from
                           demos); mean|Q| scales the term as TD3+BC (Fujimoto & Gu 2021) does, so w is free of the
                           reward scale. Where the actor already beats the data the term is off.

Only transitions of successful episodes are imitated (the batch's `success` column), so mixed data with
deliberate failures never teaches the failures.
"""

from __future__ import annotations

from typing import Any

import torch

from robot_stack.types import ACTION_KEY


def _success_weight(batch: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return batch["success"].to(like.dtype) if "success" in batch else torch.ones_like(like)


def warm_start_loss(policy: Any, batch: dict[str, torch.Tensor], mean: torch.Tensor, log_std: torch.Tensor,
                    sigma_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BC of the successful transitions -> (actor loss, metrics)."""
    bc, sigma_nll = policy.bc_terms(mean, log_std, policy.to_policy_action(batch[ACTION_KEY]))
    w = _success_weight(batch, bc)
    n = w.sum().clamp(min=1.0)
    return (w * (bc + sigma_weight * sigma_nll)).sum() / n, {"actor/bc": (w * bc).sum() / n}


def q_filtered_bc_loss(policy: Any, batch: dict[str, torch.Tensor], o: dict[str, Any], mean: torch.Tensor,
                       log_std: torch.Tensor, z: torch.Tensor, q_pi: torch.Tensor, weight: float,
                       reduce: str = "mean", q_filter: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The online term to ADD to the RL actor loss -> (term, metrics). q_pi: the actor objective's Q (B,);
    `reduce` over critic heads as the algorithm's actor does (min: CQL, mean: RLPD); q_filter=False imitates every
    successful transition (TD3+BC's unfiltered term)."""
    a_data = policy.to_policy_action(batch[ACTION_KEY])
    bc, _ = policy.bc_terms(mean, log_std, a_data)
    with torch.no_grad():
        a_pi = policy.fix_actions(policy.binarize_gripper(torch.tanh(mean)))
        q = policy.critic_q(o, torch.stack([a_data, a_pi], 1), z=z)          # (E, B, 2)
        q = q.min(0).values if reduce == "min" else q.mean(0)
        w = _success_weight(batch, bc)
        if q_filter:
            w = w * (q[:, 0] > q[:, 1]).to(bc.dtype)
    bc_loss = (w * bc).sum() / w.sum().clamp(min=1.0)
    return weight * q_pi.abs().mean().detach() * bc_loss, {"actor/bc": bc_loss, "actor/bc_filter_rate": w.mean()}
