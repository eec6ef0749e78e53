"""Action selection at inference time: how the runner turns a policy's samples into the one action it executes.

    obs ─► ActionSelector.select(policy, obs) ─► (action float32 (A,) physical, info {json-able: chosen index, ...})

A selector is plain Python (no ROS, no threads of its own) so the PolicyRunner calls it on the control thread and
the inference node only reports its `info`. V-GPS (re-rank K samples with a learned critic) and PA-RL (optimise
sampled actions against a critic, robot_stack/algos/parl.py) implement this one method; the runner never branches
on which selector it holds.
"""

from __future__ import annotations

import abc
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.policies.base import Policy

log = logging.getLogger(__name__)
SELECTION_MODES = ("vgps", "random")


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

    def reset(self) -> None:  # noqa: B027 - optional hook, a no-op for stateless selectors
        """Clear per-episode state (called at each episode start). Stateless selectors do nothing."""

    def set_task(self, language: str | None) -> None:  # noqa: B027 - optional hook
        """The task language of the next ticks (a language-conditioned critic scores for it); None = its default.
        Called by the runner with the episode mode; selectors that condition on nothing ignore it."""


def selection_tag(info: dict[str, Any]) -> str:
    """What a tick's selection adds to the action's source tag ("policy:<type>@v<n>" + this), so the recorder files
    it in the episode's policy_version and the store says which critic steered each episode:
    "+vgps:critic@v2:K10:beta0", "+random:K10", "+vgps:nocritic:K10" (a fallback tick); "" without a selection.
    No commas: the recorder joins an episode's distinct versions with them."""
    if not info:
        return ""
    k = f"K{info['k']}"
    if info.get("mode") == "random":
        return f"+random:{k}"
    critic = f"critic@v{info['critic_version']}" if "critic_version" in info else "critic"
    if "fallback" in info:
        critic = "nocritic"
    # The selector names itself ("vgps", "parl"): PA-RL ticks must not be filed as V-GPS ones. PA-RL also says how
    # many base samples it drew (N) before keeping K.
    mode = str(info.get("mode", "vgps"))
    n = f"N{info['n']}:" if "n" in info else ""
    return f"+{mode}:{critic}:{n}{k}:beta{info['beta']:g}"


def softmax_probabilities(q: np.ndarray, beta: float) -> np.ndarray:
    """p_k = exp(q_k/β) / Σ_j exp(q_j/β), (K,) -> (K,) float64, computed with the max subtracted (Q of a −1-per-step
    critic reaches −1/(1−γ) = −50, and at small β exp(q/β) under- or overflows otherwise)."""
    if beta <= 0:
        raise ValueError(f"softmax temperature beta must be > 0 (beta = 0 is the argmax), got {beta}")
    z = np.asarray(q, np.float64) / float(beta)
    z = np.exp(z - z.max())
    return z / z.sum()


def choose_index(q: np.ndarray, beta: float, rng: np.random.Generator) -> int:
    """V-GPS's pick among K scored samples (nakamotoo/SimplerEnv octo_model.py get_vgps_action): argmax Q when
    β = 0, else one categorical draw from softmax(Q/β)."""
    if beta == 0:
        return int(np.argmax(q))
    return int(rng.choice(len(q), p=softmax_probabilities(q, beta)))


class VGPSSelector(ActionSelector):
    """V-GPS (Nakamoto et al. 2024, reference/algorithms.md §4) at test time: K samples from the frozen policy in one
    batch, scored by a learned critic in one batch, the argmax (β = 0) or a softmax(Q/β) draw executed.

        obs ─► policy.sample_actions(obs, K) ─► (K, A) physical (an action-chunk policy: each chunk's first action,
               as V-GPS scores Octo's chunks by their first action)
            ─► critic.q_values(obs, (K, A)) ─► Q (K,) (min over the critic's heads)
            ─► index = argmax Q | categorical(softmax(Q/β)) | uniform (mode "random": the paper's control)
            ─► (actions[index], info)

    critic: a loaded critic (anything with q_values and, for language conditioning, config.tasks/deploy_task), or
    critic_runner: a PolicyRunner built with checkpoint_kind="critic" whose staged critic is swapped in at the start
    of `select`, i.e. between two ticks, independently of the policy's own swaps. With no critic yet, or a critic
    that raises / returns non-finite Q, the selector executes sample 0 (the un-steered generalist) and says why in
    info["fallback"]: a broken critic must not retire a good policy (the runner's fault handling is for the policy).
    """

    def __init__(self, critic: Any = None, k: int = 10, beta: float = 0.0, mode: str = "vgps",
                 seed: int | None = None, critic_runner: PolicyRunner | None = None):
        if int(k) < 1:
            raise ValueError(f"V-GPS needs k >= 1 samples per tick, got {k} (the paper uses 10 and 50)")
        if float(beta) < 0:
            raise ValueError(f"beta must be >= 0 (0 = argmax, V-GPS uses 0, 0.1, 1.0), got {beta}")
        if mode not in SELECTION_MODES:
            raise ValueError(f"selection mode {mode!r}; known: {SELECTION_MODES}")
        if critic is not None and critic_runner is not None:
            raise ValueError("pass a critic or a critic_runner, not both")
        self.k, self.beta, self.mode = int(k), float(beta), mode
        self.rng = np.random.default_rng(seed)
        self._critic, self.critic_runner = critic, critic_runner
        self._language: str | None = None
        self._conditioned: Any = None      # the critic object the language was last applied to
        self.critic_fallbacks = 0          # ticks executed un-steered because the critic failed

    @property
    def critic(self) -> Any:
        if self.critic_runner is not None:
            return self.critic_runner.policy
        return self._critic

    def set_task(self, language: str | None) -> None:
        self._language = language or None
        self._conditioned = None

    def _condition(self, critic: Any) -> None:
        """Point a language-conditioned critic at the episode's task (again after a critic swap)."""
        if critic is self._conditioned:
            return
        cfg = getattr(critic, "config", None)
        tasks = tuple(getattr(cfg, "tasks", ()) or ())
        if self._language is not None and tasks:
            if self._language not in tasks:
                raise KeyError(f"the critic was not trained on task {self._language!r} (its tasks: {list(tasks)}); "
                               "train it on episodes of this task (learner=vgps) or deploy without V-GPS")
            cfg.deploy_task = self._language
        self._conditioned = critic

    def select(self, policy: Policy, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        if self.critic_runner is not None:
            self.critic_runner.activate_staged()      # the control thread, between two ticks
        actions = np.asarray(policy.sample_actions(obs, self.k), dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] != self.k:
            raise ValueError(f"sample_actions(obs, {self.k}) returned shape {actions.shape}, expected ({self.k}, A)")
        t1 = time.perf_counter()
        info: dict[str, Any] = {"mode": self.mode, "k": self.k, "beta": self.beta}
        q = None
        if self.mode == "random":
            index = int(self.rng.integers(self.k))
        else:
            critic = self.critic
            index = 0
            if critic is None:
                info["fallback"] = "no critic loaded yet (announce one on critic_update)"
            else:
                try:
                    self._condition(critic)
                    q = np.asarray(critic.q_values(obs, actions), dtype=np.float64)
                    if q.shape != (self.k,) or not np.all(np.isfinite(q)):
                        raise ValueError(f"q_values returned {q.shape} {q[:4].tolist()}..., expected ({self.k},) finite")
                    index = choose_index(q, self.beta, self.rng)
                except Exception as e:  # noqa: BLE001 - a critic fault leaves the policy acting, un-steered
                    self.critic_fallbacks += 1
                    log.error("V-GPS critic failed (%s: %s); executing the policy's first sample", type(e).__name__, e)
                    info["fallback"] = f"critic {type(e).__name__}: {e}"
                    q = None
            if self.critic_runner is not None and self.critic_runner.active is not None:
                info["critic_version"] = self.critic_runner.active.version
        t2 = time.perf_counter()
        info["index"] = index
        if q is not None:
            info.update(q_chosen=float(q[index]), q_max=float(q.max()), q_min=float(q.min()),
                        q_spread=float(q.max() - q.min()), q_std=float(q.std()))
        info.update(sample_ms=round((t1 - t0) * 1e3, 3), score_ms=round((t2 - t1) * 1e3, 3),
                    select_ms=round((t2 - t0) * 1e3, 3))
        return actions[index], info
