"""V-GPS value function (Nakamoto, Mees, Kumar, Levine, CoRL 2024; reference/algorithms.md §4): a language-conditioned
Cal-QL critic trained offline on the store, used at test time to re-rank a frozen generalist's samples
(robot_stack/inference/selection.py `VGPSSelector`).

    store episodes (every source, successes AND failures) ─► vgps_labels per episode:
        r_t = 0 on the last 3 steps of a success, −1 otherwise; mask_t = 0 on those 3 (no bootstrap past the goal);
        G_t = r_t + γ·mask_t·G_{t+1} (failed: −1/(1−γ) at every step, Cal-QL's pessimistic failure value)
      ─► Cal-QL on actor_critic (robot_stack/algos/cql.py `calql`): twin critics, α 5, 4 CQL actions, max-Q backup,
         policy-action Q clipped below by G (the Cal-QL bound); task text ─► text encoder ─► FiLM + MLP input
      ─► checkpoint of kind "critic" (policy_config.extra.kind), its own root and versions, next to the policy's

This module adds no new learner: the recipe is conf/learner/vgps.yaml (vgps_state.yaml) run by the RL learner
service, and `VGPSCriticService` only refuses configurations that would not produce a usable V-GPS critic (a policy
checkpoint kind, no task conditioning, another label scheme) before hours of training, naming the fix.

Reference code read (not copied): nakamotoo/V-GPS experiments/configs/data_config.py (num_final_repeat=3,
discount 0.98, BOUNDS action normalisation), jaxrl_m/agents/continuous/cql.py (Cal-QL: policy-action Q clipped by
mc_returns; negative goals get −1/(1−γ)), jaxrl_m/vision/film_conditioning_layer.py (x·(1+γ(z)) + β(z), zero-init).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_stack.algos.losses import mc_returns, ptr_rewards
from robot_stack.policies.checkpoint import CRITIC_KIND

# V-GPS's label scheme in RewardConfig terms: raw 1 on the last 3 steps of a success, r = 1·raw − 1 ∈ {0, −1},
# mask = 1 − raw. (PTR's is the same shape with scale 11: +10/−1.)
VGPS_REWARD = {"num_final_reward_steps": 3, "scale": 1.0, "bias": -1.0, "term_as_rew": True}
VGPS_DISCOUNT = 0.98


def vgps_labels(n_steps: int, success: bool, discount: float = VGPS_DISCOUNT
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reward, mask, mc_return), (T,) float32 each, of one episode under V-GPS's scheme (module docstring).

    The same functions the learner's TransitionDataset applies to RewardConfig(**VGPS_REWARD), so this is what the
    critic trains on, not a second implementation."""
    r = VGPS_REWARD
    reward, mask = ptr_rewards(n_steps, bool(success), r["num_final_reward_steps"], r["scale"], r["bias"],
                               r["term_as_rew"])
    return reward, mask, mc_returns(reward, mask, discount, failure_reward=r["bias"])


def check_vgps_config(cfg: Any) -> None:
    """Refuse an RLLearnerConfig that would not train a V-GPS critic; each message names the fix."""
    from robot_stack.algos.base import algo_class

    if not getattr(algo_class(cfg.algo), "needs_mc_returns", False):
        raise ValueError(f"V-GPS's critic is Cal-QL (the MC-return bound), got algo {cfg.algo!r}; set algo: calql")
    pc = dict(cfg.policy_config)
    kind = (pc.get("extra") or {}).get("kind")
    if kind != CRITIC_KIND:
        raise ValueError(f"policy_config.extra.kind is {kind!r}: the checkpoint would be a policy and the inference "
                         f"node would refuse it as a critic; set policy_config.extra.kind: {CRITIC_KIND}")
    if pc.get("conditioning") != "language":
        raise ValueError(f"V-GPS's critic is conditioned on the task language, got conditioning "
                         f"{pc.get('conditioning')!r}; set policy_config.conditioning: language")
    from robot_stack.learn.rl_dataset import RewardConfig

    reward = RewardConfig.from_dict(dict(cfg.reward))
    wrong = {k: getattr(reward, k) for k, v in VGPS_REWARD.items() if getattr(reward, k) != v}
    if wrong:
        raise ValueError(f"reward {wrong} differs from V-GPS's label scheme {VGPS_REWARD}; use learner=vgps (or "
                         "vgps_state), whose reward block is that scheme")


def critic_service(store_path: str | Path, checkpoint_dir: str | Path, cfg: Any, **kwargs: Any):
    """An RLLearnerService that trains a V-GPS critic into `checkpoint_dir` (its own root: critic versions never
    mix with the policy's), after check_vgps_config. kwargs: announce, on_progress."""
    from robot_stack.learn.rl_service import RLLearnerService

    check_vgps_config(cfg)
    return RLLearnerService(store_path, checkpoint_dir, cfg, **kwargs)
