"""Action selection at inference time: how the runner turns a policy's samples into the one action it executes.

    obs ─► ActionSelector.select(policy, obs) ─► (action float32 (A,) physical, info {json-able: chosen index, ...})

A selector is plain Python (no ROS, no threads of its own) so the PolicyRunner calls it on the control thread and
the inference node only reports its `info`. V-GPS (re-rank K samples with a learned critic) and PA-RL (optimise
sampled actions against a critic, robot_stack/algos/parl.py) implement this one method; the runner never branches
on which selector it holds.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_stack.policies.base import Policy


class ActionSelector(abc.ABC):
    """Chooses the executed action from a policy's proposals.

    select(policy, obs) -> (action, info): `obs` is one unbatched observation (flat keys, DESIGN §3), `action` a
    float32 (A,) physical action, `info` a small JSON-able dict the runner forwards to inference/status and the
    store (e.g. {"index": 3, "q_spread": 0.4, "select_ms": 2.1}). The policy is passed per call, not held, so a
    policy hot swap between ticks needs nothing from the selector.
    """

    @abc.abstractmethod
    def select(self, policy: Policy, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        """One observation -> (float32 (A,) physical action, info dict)."""

    def reset(self) -> None:
        """Clear per-episode state (called at each episode start). Stateless selectors do nothing."""
