"""Monte-Carlo return-to-go: the one implementation the learner (Cal-QL's bound) and the store sampler share.

JaxCQL `replay_buffer.py calc_return_to_go` (reference/algorithms.md §0): a failed sparse trajectory, every reward
equal to the failure reward r_neg, gets the "infinite-horizon" pessimistic value r_neg / (1 − γ) at every step;
any other trajectory the discounted return-to-go G_T = r_T, G_t = r_t + γ·mask_t·G_{t+1}.

Numpy only, so the store stays free of torch and of the algorithms package.
"""

from __future__ import annotations

import numpy as np


def mc_returns(rewards: np.ndarray, masks: np.ndarray | None, discount: float, failure_reward: float | None = None
               ) -> np.ndarray:
    """rewards (T,), masks (T,) (1 − done; None = all ones) -> G (T,) float32.

    `failure_reward`: r_neg after scaling; None turns the failed-trajectory rule off (a plain return-to-go).
    """
    rewards = np.asarray(rewards, np.float64)
    masks = np.ones_like(rewards) if masks is None else np.asarray(masks, np.float64)
    if len(rewards) != len(masks):
        raise ValueError(f"rewards ({len(rewards)}) and masks ({len(masks)}) differ in length")
    if failure_reward is not None and len(rewards) and np.all(rewards == failure_reward):
        return np.full(len(rewards), failure_reward / (1.0 - discount), np.float32)
    out = np.zeros(len(rewards), np.float64)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + (discount * g * masks[t] if t < len(rewards) - 1 else 0.0)
        out[t] = g
    return out.astype(np.float32)
