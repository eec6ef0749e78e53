"""`parl`: Policy-Agnostic RL (Sobol Mark et al. 2024; reference/algorithms.md §5; MaxSobolMark/PolicyAgnosticRL).

PA-RL improves ANY policy that can sample (diffusion, OpenVLA, ...) without back-propagating through it: a critic
scores and improves the policy's own samples, and the improved actions are distilled back into the policy by its
own supervised loss.

    action optimisation  (optimize_actions; PA-RL jaxrl_m/agents/continuous/action_optimization.py
                          `action_optimization_sample_actions` + `local_optimization_steps`)
      s ─► base policy: N samples (B, N, A) ─► global: ensemble-MEAN Q, keep the top k (best last)
        ─► [distillation only: drop the worst, add the dataset action]
        ─► local: `num_steps` steps a ← clip(a + η ∇_a Q̄(s, a), −1, 1), keeping each sample's best iterate
        ─► select: argmax Q (acting, critic training) or a draw from softmax(Q / T) (distillation, base config)

    critic (PARL, an Algorithm on an actor_critic's critic: a Cal-QL ensemble; PA-RL parl_calql.py)
      y = r + γ·mask·min over a random 2 of the E target heads Q̄(s', π*(s'))       (π* = the operator, argmax)
      loss = Σ_i MSE(Q_i(s, a), y) + α·Σ_i mean(logsumexp([Q_i(s, a_rand)×n, max(Q_i(s, π*(s')), G)×n,
                                                            max(Q_i(s, π*(s)), G)×n]) − Q_i(s, a))
             (no importance weights and no Cal-QL bound on random actions: the PA-RL config's
              cql_importance_sample=False, use_calql_on_random_actions=False)

    learner (PARLLearnerService: the RL learner service + a base policy)
      store ─► pools (offline / online transitions) ─► per state: N base samples, cached (the base is frozen between
               distillation phases; the reference caches OpenVLA samples the same way)
      offline: critic updates only (the base is pre-trained by BC)
      online, per round of new episodes (train.py order): distil base_policy_utd·new steps
               (target = the optimised action, loss = the base policy's own supervised loss: DDPM ε-MSE for
               diffusion, token cross-entropy through LoRA for OpenVLA) ─► re-sample the cache with the new base
               ─► utd_ratio·new critic steps ─► publish base version (checkpoint_dir) + critic version
               (checkpoint_dir/critic), both announced

    acting (PARLSelector, robot_stack.inference.selection.ActionSelector): N = policy.sample_actions(obs, N) ─►
           the same optimisation with the critic ─► the chosen action + {index, Q spread, timing}

Action chunks: the critic scores the executed FIRST action of a chunk (as V-GPS scores a chunk policy); the
distillation target is the sampled chunk whose first action is replaced by the optimised one. The gripper is a
binary decision (DESIGN.md §3): local steps never move it (nor an actor_critic's fixed dims); the global step
chooses between samples that open and close.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robot_stack.algos.base import ALGOS, AlgoConfig, Algorithm
from robot_stack.inference.selection import ActionSelector
from robot_stack.learn.rl_service import RLLearnerConfig, RLLearnerService, shuffle_batch
from robot_stack.policies.base import dataclass_from_dict
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, GRIPPER_INDEX

log = logging.getLogger(__name__)

CAND_KEY = "parl.candidates"      # (B, N, A) critic-normalised first actions of N base samples at s
NEXT = "next."
HIST_PREFIX = "parl.hist."        # distillation batches: observation windows (B, T_o, ...) per base key
CHUNKS_KEY = "parl.chunks"        # distillation batches: the N cached base chunks (B, N, T_p, A), physical
DATA_CHUNK_KEY = "parl.data_chunk"  # distillation batches: the dataset's chunk (B, T_p, A), physical
TASK_KEY = "task"
SELECTIONS = ("argmax", "softmax")


# ================================================================================ action optimisation
@dataclass
class ActionOptConfig:
    """PA-RL's DEFAULT_PARL_CONFIG (configs/base_config.py): N 32, keep 10, 10 steps of η 3e-4 on the ensemble
    mean (optimize_critic_ensemble_min=False), online critic (use_target_critic=False). OpenVLA (real_config.py):
    N 8, keep 4 ("can't fit more actions than this on a single h100"), OPENVLA_ACTION_OPT."""

    num_base_actions: int = 32
    num_keep: int = 10
    num_steps: int = 10
    step_size: float = 3e-4
    optimize_ensemble_min: bool = False
    selection: str = "argmax"     # argmax | softmax (a draw from Categorical(logits = Q / temperature))
    temperature: float = 1.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ActionOptConfig:
        cfg = dataclass_from_dict(cls, dict(d or {}))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.num_base_actions < 1 or self.num_keep < 1:
            raise ValueError(f"num_base_actions ({self.num_base_actions}) and num_keep ({self.num_keep}) must be >= 1")
        if self.num_steps < 0 or self.step_size < 0:
            raise ValueError(f"num_steps ({self.num_steps}) and step_size ({self.step_size}) must be >= 0")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection {self.selection!r}; known: {SELECTIONS}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


OPENVLA_ACTION_OPT = {"num_base_actions": 8, "num_keep": 4}

QFn = Callable[[torch.Tensor], torch.Tensor]   # actions (B, K, A) -> Q per head (E, B, K)


def _reduce_heads(q: torch.Tensor, use_min: bool) -> torch.Tensor:
    return q.min(0).values if use_min else q.mean(0)


def local_optimize(q_fn: QFn, actions: torch.Tensor, num_steps: int, step_size: float, low: torch.Tensor | float,
                   high: torch.Tensor | float, frozen: torch.Tensor | None = None, use_min: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient ascent on Q in action space, each sample independently (PA-RL `local_optimization_steps`):
    a ← clip(a + η ∇_a Q̄(s, a), low, high), the raw gradient (not normalised), Q̄ the ensemble mean (or min).
    The best-valued iterate of each sample is kept, the final one included (keep_action_with_max_value; ties go to
    the later iterate, as the reference's `==` on the running max).

    actions (B, K, A); low/high (A,) or scalars; frozen (A,) bool: dims the steps never move (gripper decision,
    fixed dims). -> (best actions (B, K, A), their Q̄ (B, K), index of the best iterate (B, K), 0 = the input)."""
    a = actions.detach().clone()
    best, best_v = a.clone(), torch.full(a.shape[:-1], -math.inf, device=a.device)
    best_i = torch.zeros(a.shape[:-1], dtype=torch.long, device=a.device)
    for i in range(num_steps + 1):
        with torch.enable_grad():   # selectors call this under no_grad
            x = a.detach().requires_grad_(i < num_steps)
            v = _reduce_heads(q_fn(x), use_min)
            grad = torch.autograd.grad(v.sum(), x)[0] if i < num_steps else None
        v = v.detach().float()
        better = v >= best_v
        best = torch.where(better.unsqueeze(-1), a, best)
        best_i = torch.where(better, torch.full_like(best_i, i), best_i)
        best_v = torch.maximum(best_v, v)
        if grad is None:
            break
        if frozen is not None:
            grad = grad.masked_fill(frozen, 0.0)
        a = torch.clamp(a + step_size * grad, low, high)
    return best, best_v, best_i


def select_index(values: torch.Tensor, selection: str, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """values (B, K) -> (B,) index: argmax, or a draw from softmax(values / temperature) (PA-RL's
    Categorical(logits=Q) mixture; temperature 1 there)."""
    if selection == "argmax":
        return values.argmax(-1)
    if selection == "softmax":
        probs = torch.softmax(values.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    raise ValueError(f"selection {selection!r}; known: {SELECTIONS}")


@dataclass
class OptimizedActions:
    actions: torch.Tensor       # (B, K, A) the kept candidates after local optimisation
    values: torch.Tensor        # (B, K) their ensemble-mean Q
    q_before: torch.Tensor      # (B, K) ensemble-mean Q of the same candidates before the local steps
    source: torch.Tensor        # (B, K) index of each kept candidate among the N samples; −1 = the extra action
    best_iter: torch.Tensor     # (B, K) which local iterate was kept (0 = none improved)
    index: torch.Tensor         # (B,) the selected candidate
    chosen: torch.Tensor        # (B, A) the selected action

    def metrics(self) -> dict[str, float]:
        return {"q_before": float(self.q_before.mean()), "q_after": float(self.values.mean()),
                "value_gain": float((self.values - self.q_before).mean()),
                "q_spread": float((self.values.max(-1).values - self.values.min(-1).values).mean()),
                "moved_fraction": float((self.best_iter > 0).float().mean())}


def optimize_actions(q_fn: QFn, candidates: torch.Tensor, cfg: ActionOptConfig, low: torch.Tensor | float = -1.0,
                     high: torch.Tensor | float = 1.0, frozen: torch.Tensor | None = None,
                     extra: torch.Tensor | None = None, selection: str | None = None,
                     generator: torch.Generator | None = None) -> OptimizedActions:
    """PA-RL action optimisation of N candidates per state (B, N, A), batched over B (module docstring).

    extra (B, A): the distillation's dataset action, which replaces the worst kept sample before the local steps
    (`dataset_actions_to_consider`). selection: None = cfg.selection."""
    b, n, _ = candidates.shape
    with torch.no_grad():
        q0 = q_fn(candidates).float().mean(0)                      # global step: ensemble MEAN (reference)
    k = min(cfg.num_keep, n)
    # Ascending order, best last, as the reference's argsort(...)[-k:]; sorted even when k == N so that "drop the
    # worst" for the extra action drops the worst (the reference drops index 0 of an unsorted set then).
    order = q0.argsort(dim=-1)[:, n - k:]
    kept = torch.gather(candidates, 1, order.unsqueeze(-1).expand(-1, -1, candidates.shape[-1]))
    q_kept = torch.gather(q0, 1, order)
    source = order
    if extra is not None:
        kept = torch.cat([kept[:, 1:], extra.unsqueeze(1).to(kept.dtype)], dim=1)
        source = torch.cat([order[:, 1:], torch.full((b, 1), -1, dtype=order.dtype, device=order.device)], dim=1)
        with torch.no_grad():
            q_extra = q_fn(extra.unsqueeze(1)).float().mean(0)
        q_kept = torch.cat([q_kept[:, 1:], q_extra], dim=1)
    best, best_v, best_i = local_optimize(q_fn, kept, cfg.num_steps, cfg.step_size, low, high, frozen,
                                          cfg.optimize_ensemble_min)
    if cfg.optimize_ensemble_min:   # the steps followed the min; the choice is on the mean (reference: q_values)
        with torch.no_grad():
            best_v = q_fn(best).float().mean(0)
    idx = select_index(best_v, selection or cfg.selection, cfg.temperature, generator)
    chosen = best[torch.arange(b, device=best.device), idx]
    return OptimizedActions(best, best_v, q_kept, source, best_i, idx, chosen)


def critic_action_space(critic: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low (A,), high (A,), frozen (A,) bool) of an actor_critic's normalised action space: the box [−1, 1]^A
    (the physical action bounds map onto it), frozen = the gripper (a binary decision the critic only saw at ±1)
    and the config's fixed_action_dims."""
    a_dim = critic.action_dim
    frozen = torch.zeros(a_dim, dtype=torch.bool, device=critic.device)
    frozen[list(critic.normalizer.passthrough_dims)] = True
    frozen[list(getattr(critic.config, "fixed_action_dims", ()))] = True
    ones = torch.ones(a_dim, device=critic.device)
    return -ones, ones, frozen


class StateConditionedHeads:
    """The ONLINE critic's heads (actor_critic.CriticHeads, use_target_critic=False) at fixed states, for the many
    action batches of one optimisation: (B, K, A) -> Q (E, B, K), equal to `critic.critic_q(o, a, z=z)`.

    Every head layer reads [h, a, z] (layer 0: [cond, a, z]); the state part (z, cond) @ W is the same for all K
    candidates and all local iterates, so it is computed once per state here instead of once per action and
    iterate. The action optimisation is most of a PA-RL critic update's cost on a CPU (1 + 11 critic passes over
    B·K actions for each of s and s'): this halves it at 128-wide layers (benchmarks/bench_parl.py)."""

    def __init__(self, heads: Any, z: torch.Tensor, cond: torch.Tensor | None):
        self.heads = heads
        self.n_cond = 0 if cond is None else cond.shape[-1]
        state = z if cond is None else torch.cat([cond, z], dim=-1)
        self.a_dim = heads.weights[0].shape[1] - state.shape[-1]
        self.state_terms: list[torch.Tensor] = []
        self.action_w: list[torch.Tensor] = []
        self.hidden_w: list[torch.Tensor | None] = []
        c, A = self.n_cond, self.a_dim
        with torch.no_grad():
            for layer in range(len(heads.hidden)):
                w, b = heads.weights[layer], heads.biases[layer]
                if layer == 0:
                    ws, wa, wh = torch.cat([w[:, :c], w[:, c + A:]], dim=1), w[:, c:c + A], None
                    x_state = state
                else:
                    h = heads.hidden[layer - 1]
                    ws, wa, wh = w[:, h + A:], w[:, h:h + A], w[:, :h]
                    x_state = z
                self.state_terms.append((torch.matmul(x_state.unsqueeze(0), ws) + b).detach())   # (E, B, h_l)
                self.action_w.append(wa)
                self.hidden_w.append(wh)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        heads = self.heads
        B, n, _ = a.shape
        E = heads.num_heads
        flat = a.reshape(1, B * n, -1)
        x = None
        for layer in range(len(heads.hidden)):
            pre = torch.matmul(flat, self.action_w[layer]).reshape(E, B, n, -1) + self.state_terms[layer].unsqueeze(2)
            if x is not None:
                pre = pre + torch.matmul(x, self.hidden_w[layer]).reshape(E, B, n, -1)
            x = pre.reshape(E, B * n, -1)
            if heads.layer_norm:
                x = F.layer_norm(x, x.shape[-1:]) * heads.norm_weights[layer] + heads.norm_biases[layer]
            x = F.relu(x)
        out = torch.baddbmm(heads.biases[-1], x, heads.weights[-1])
        return out.reshape(E, B, n)


def critic_q_fn(critic: Any, o: dict[str, Any], z: torch.Tensor) -> QFn:
    """Q heads of an actor_critic's ONLINE critic (use_target_critic=False) at prepared obs o with latent z,
    (B, K, A) -> (E, B, K); the state part precomputed (StateConditionedHeads)."""
    return StateConditionedHeads(critic.critic.heads, z.detach(), o["cond"])


# ================================================================================ the critic (Algorithm)
@dataclass
class PARLConfig(AlgoConfig):
    """PA-RL's Cal-QL critic (BASE_PARL_CALQL_CONFIG) in the non-distributional form the issue allows: ensemble
    (policy_config.num_qs 10, LayerNorm), target min over a random 2 heads, 10 random CQL actions, no importance
    sampling, Cal-QL bound on the policy actions only, lr 3e-4, τ 5e-3. γ, α and the reward recipe are this
    project's Cal-QL CPU recipe on the sim (learner YAML): α 0.005 is for the reference's HL-Gauss cross-entropy
    loss, whose scale an MSE critic does not share."""

    discount: float = 0.98
    cql_alpha: float = 1.0
    cql_n_actions: int = 10
    cql_temperature: float = 1.0
    critic_subsample: int = 2
    critic_lr: float = 3e-4
    tau: float = 5e-3
    calql: bool = True
    action_opt: dict[str, Any] = field(default_factory=dict)   # ActionOptConfig fields


@ALGOS.register("parl")
class PARL(Algorithm):
    """Critic updates of PA-RL: the policy inside CQL and the TD target is the action-optimisation operator over
    base-policy samples supplied in the batch (CAND_KEY at s, next.CAND_KEY at s'). `self.policy` is an
    actor_critic used for its critic ensemble (its SAC actor is never trained; the learner acts and distils with
    the base policy), so critic checkpoints are ordinary actor_critic checkpoints with `q_values`."""

    name = "parl"
    config_class = PARLConfig
    needs_mc_returns = True

    def __init__(self, config: PARLConfig, policy):
        super().__init__(config, policy)
        n_heads = len(policy.critic.heads)
        if config.critic_subsample > n_heads:
            raise ValueError(f"critic_subsample {config.critic_subsample} > the critic's {n_heads} heads; raise "
                             "policy_config.num_qs (PA-RL: 10) or lower critic_subsample")
        self.opt_cfg = ActionOptConfig.from_dict(config.action_opt)
        self._critic_opt = torch.optim.Adam(policy.critic_parameters(), lr=config.critic_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self._critic_opt}

    def policy_actions(self, o: dict[str, Any], z: torch.Tensor, candidates: torch.Tensor,
                       selection: str = "argmax", extra: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> OptimizedActions:
        """The operator π*(s) on prepared obs o (latent z, detached) and candidates (B, N, A) normalised."""
        low, high, frozen = critic_action_space(self.policy)
        return optimize_actions(critic_q_fn(self.policy, o, z.detach()), candidates.to(z.device), self.opt_cfg,
                                low, high, frozen, extra=extra, selection=selection, generator=generator)

    @staticmethod
    def _candidates(batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        key = prefix + CAND_KEY
        if key not in batch:
            raise KeyError(f"PA-RL critic batch lacks {key!r} (base-policy samples per state); batches come from "
                           "PARLLearnerService, which samples them with the base policy")
        return batch[key].float()

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, p = self.config, self.policy
        p.train()
        o, o_next = p.prepare_obs(batch), p.prepare_obs(batch, "next.")
        a_data = p.to_policy_action(batch[ACTION_KEY])
        b, a_dim = a_data.shape
        z = p.critic_latent(o)
        with torch.no_grad():
            z_next = p.critic_latent(o_next)
        # π*(s), π*(s'): argmax of the optimised candidates (parl_calql forward_policy(train=True) -> argmax=True).
        pi = self.policy_actions(o, z, self._candidates(batch))
        pi_next = self.policy_actions(o_next, z_next, self._candidates(batch, NEXT))
        with torch.no_grad():
            target_q = p.critic_q(o_next, pi_next.chosen.unsqueeze(1), target=True)[..., 0].float()   # (E, B)
            if cfg.critic_subsample:
                heads = torch.randperm(target_q.shape[0], device=target_q.device)[:cfg.critic_subsample]
                target_q = target_q[heads]
            y = batch["reward"].float() + cfg.discount * batch["mask"].float() * target_q.min(0).values
        n = cfg.cql_n_actions
        a_rand = p.fix_actions(torch.empty(b, n, a_dim, device=a_data.device).uniform_(-1.0, 1.0))
        sets = torch.cat([a_data.unsqueeze(1), a_rand, pi.chosen.unsqueeze(1), pi_next.chosen.unsqueeze(1)], dim=1)
        q_all = p.critic_q(o, sets, z=z).float()                                             # (E, B, 1 + n + 2)
        q_data, q_rand = q_all[..., 0], q_all[..., 1:1 + n]
        q_pi, q_pi_next = q_all[..., 1 + n], q_all[..., 2 + n]    # π*(s') evaluated at s, as §0's CQL term
        m: dict[str, torch.Tensor] = {}
        if cfg.calql:
            bound = batch["mc_return"].float().unsqueeze(0)
            m["critic/bound_rate"] = (q_pi < bound).float().mean()
            m["critic/mc_return"] = bound.mean()
            q_pi, q_pi_next = torch.maximum(q_pi, bound), torch.maximum(q_pi_next, bound)
        # The operator is deterministic: its n CQL samples are n copies, i.e. + log n inside the logsumexp.
        log_n = math.log(n) if n > 0 else 0.0
        t = cfg.cql_temperature
        cat = torch.cat([q_rand, (q_pi_next + log_n).unsqueeze(-1), (q_pi + log_n).unsqueeze(-1)], dim=-1)
        lse = t * torch.logsumexp(cat / t, dim=-1)                                           # (E, B)
        cql_diff = (lse - q_data).mean(-1)                                                   # (E,)
        td = ((q_data - y.unsqueeze(0)) ** 2).mean(-1)                                        # (E,)
        loss = td.sum() + cfg.cql_alpha * cql_diff.sum()
        self._step(self._critic_opt, loss)
        p.update_target(cfg.tau)
        m.update({"critic/loss": loss, "critic/td_loss": td.mean(), "critic/cql_diff": cql_diff.mean(),
                  "critic/q_data": q_data.mean(), "critic/q_rand": q_rand.mean(), "critic/q_pi_current": q_pi.mean(),
                  "critic/q_pi_next": q_pi_next.mean(), "critic/target_q": y.mean(),
                  "critic/q_ensemble_std": q_data.std(0).mean(), "critic/reward": batch["reward"].float().mean()})
        m.update({f"parl/{k}": torch.tensor(v) for k, v in pi.metrics().items()})
        return {k: float(v.detach()) for k, v in m.items()}

    def evaluate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Held-out diagnostics: Q of the data actions, TD error against the operator's backup (all target heads'
        min, a fixed yardstick), Q of π*(s) and the batch's MC return."""
        cfg, p = self.config, self.policy
        was = p.training
        p.eval()
        try:
            o, o_next = p.prepare_obs(batch), p.prepare_obs(batch, "next.")
            with torch.no_grad():
                z, z_next = p.critic_latent(o), p.critic_latent(o_next)
                q = p.critic_q(o, p.to_policy_action(batch[ACTION_KEY]).unsqueeze(1), z=z)[..., 0].float()
            pi = self.policy_actions(o, z, self._candidates(batch))
            pi_next = self.policy_actions(o_next, z_next, self._candidates(batch, NEXT))
            with torch.no_grad():
                v_next = p.critic_q(o_next, pi_next.chosen.unsqueeze(1), target=True)[..., 0].float().min(0).values
                y = batch["reward"].float() + cfg.discount * batch["mask"].float() * v_next
        finally:
            p.train(was)
        out = {"q_data": float(q.mean()), "td_error": float(((q - y) ** 2).mean()), "q_pi_opt": float(pi.values.mean())}
        if "mc_return" in batch:
            out["mc_return"] = float(batch["mc_return"].float().mean())
        return out


# ================================================================================ base policies
class ChunkBase:
    """A base policy that samples action chunks for a batch of observation histories (the diffusion policy:
    `sample_normalized_batch`, `data_window`, `denoising_loss`). Distillation = its DDPM ε-MSE on (history,
    optimised chunk) pairs, with its EMA after every step (the policy's own training recipe)."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.obs_offsets, self.action_offsets = (tuple(int(x) for x in w) for w in policy.data_window())
        if 0 not in self.action_offsets:
            raise ValueError(f"{policy.name}: action window {self.action_offsets} does not contain the current step")
        self.exec_index = self.action_offsets.index(0)   # the chunk's action at the current observation

    def sample(self, obs: dict[str, torch.Tensor], n: int, tasks: list[str]) -> torch.Tensor:
        """obs {key: (B, T_o, ...)} -> (B, n, T_p, A) physical chunks."""
        return self.policy.to_physical(self.policy.sample_normalized_batch(obs, n))

    def loss(self, obs: dict[str, torch.Tensor], chunks: torch.Tensor, tasks: list[str]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.policy.denoising_loss({**obs, ACTION_KEY: chunks}).mean()
        return loss, {"loss": float(loss.detach())}

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.policy.net.parameters() if p.requires_grad]

    def after_step(self) -> None:
        self.policy.after_optimizer_step()


class SingleActionBase:
    """Any other sampling policy (OpenVLA, actor_critic, bc_conv): `sample_actions(obs, k)` per observation (the
    VLA decodes the k samples as one batch after one prefill) and `compute_loss` on single frames (OpenVLA: the
    next-token cross-entropy on the 7 action tokens through the LoRA adapter)."""

    obs_offsets: tuple[int, ...] = (0,)
    action_offsets: tuple[int, ...] = (0,)
    exec_index = 0

    def __init__(self, policy: Any):
        self.policy = policy

    def sample(self, obs: dict[str, torch.Tensor], n: int, tasks: list[str]) -> torch.Tensor:
        out = []
        for i, task in enumerate(tasks):
            frame = {k: v[i, 0].cpu().numpy() for k, v in obs.items()}
            frame[TASK_KEY] = task
            out.append(torch.as_tensor(np.asarray(self.policy.sample_actions(frame, n)), dtype=torch.float32))
        return torch.stack(out).unsqueeze(2)                                                  # (B, n, 1, A)

    def loss(self, obs: dict[str, torch.Tensor], chunks: torch.Tensor, tasks: list[str]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        batch: dict[str, Any] = {k: v[:, 0] for k, v in obs.items()}
        batch[ACTION_KEY] = chunks[:, 0]
        batch[TASK_KEY] = list(tasks)
        return self.policy.compute_loss(batch)

    def parameters(self) -> list[torch.nn.Parameter]:
        own = getattr(self.policy, "trainable_parameters", None)
        return own() if own is not None else [p for p in self.policy.parameters() if p.requires_grad]

    def after_step(self) -> None:
        hook = getattr(self.policy, "after_optimizer_step", None)
        if hook is not None:
            hook()


def make_base(policy: Any) -> ChunkBase | SingleActionBase:
    """The adapter of a base policy by what it can do (no branching on names)."""
    if hasattr(policy, "sample_normalized_batch") and hasattr(policy, "data_window"):
        return ChunkBase(policy)
    if hasattr(policy, "sample_actions"):
        return SingleActionBase(policy)
    raise TypeError(f"policy {getattr(policy, 'name', type(policy).__name__)!r} cannot sample actions; PA-RL needs "
                    "sample_actions(obs, k) (DESIGN.md §3 policy interface)")


def distillation_targets(algo: PARL, base: ChunkBase | SingleActionBase, batch: dict[str, torch.Tensor],
                         argmax: bool, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, dict[str, float]]:
    """The supervised targets of one distillation batch (PA-RL train.py preprocess_batch_with_action_optimization):
    the kept top-(k−1) base samples + the dataset action, all locally optimised, then argmax or a softmax draw.
    -> (target chunks (B, T_p, A) physical: the chosen sample's chunk, or the dataset chunk, with its executed
    action replaced by the optimised one; metrics)."""
    critic = algo.policy
    was = critic.training
    critic.eval()   # targets are computed without the critic's training augmentation
    try:
        o = critic.prepare_obs(batch)
        with torch.no_grad():
            z = critic.critic_latent(o)
        chunks, data_chunk = batch[CHUNKS_KEY].float(), batch[DATA_CHUNK_KEY].float()
        e = base.exec_index
        cand = critic.to_policy_action(chunks[:, :, e])
        extra = critic.to_policy_action(data_chunk[:, e])
        res = algo.policy_actions(o, z, cand, selection="argmax" if argmax else "softmax", extra=extra,
                                  generator=generator)
    finally:
        critic.train(was)
    b = chunks.shape[0]
    rows = torch.arange(b)
    src = res.source[rows, res.index]                                                         # (B,)
    target = torch.where((src < 0).view(b, 1, 1), data_chunk, chunks[rows, src.clamp(min=0)]).clone()
    with torch.no_grad():
        target[:, e] = critic.to_physical(res.chosen).to(target.dtype)
    info = {f"distill/{k}": v for k, v in res.metrics().items()}
    info["distill/data_action_chosen"] = float((src < 0).float().mean())
    return target, info


# ================================================================================ acting
class PARLSelector(ActionSelector):
    """PA-RL acting (robot_stack.inference.selection.ActionSelector): N samples from the policy, the critic's
    global top-k and local steps, argmax (PA-RL's max_q_value strategy for collection and evaluation) or a
    softmax draw.

    critic: an actor_critic critic (the PARL learner's checkpoint, kind "critic"), or critic_runner: a PolicyRunner
    built with checkpoint_kind="critic" whose staged critic is swapped in at the start of `select` (between two
    ticks, independently of the policy), as VGPSSelector does. With no critic yet, or a critic that raises or gives
    non-finite values, the tick executes the policy's first sample and says why in info["fallback"]: a broken
    critic must not retire a good policy."""

    def __init__(self, critic: Any = None, cfg: ActionOptConfig | dict[str, Any] | None = None,
                 seed: int | None = None, critic_runner: Any = None):
        if critic is not None and critic_runner is not None:
            raise ValueError("pass a critic or a critic_runner, not both")
        self._critic, self.critic_runner = critic, critic_runner
        self.cfg = cfg if isinstance(cfg, ActionOptConfig) else ActionOptConfig.from_dict(cfg)
        self.generator = torch.Generator(device="cpu")
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self._language: str | None = None
        self.critic_fallbacks = 0

    @property
    def critic(self) -> Any:
        return self.critic_runner.policy if self.critic_runner is not None else self._critic

    def observation_keys(self) -> list[str]:
        return self.critic.observation_keys() if self.critic is not None else []

    def set_task(self, language: str | None) -> None:
        self._language = language or None

    def _optimize(self, critic: Any, obs: dict[str, np.ndarray], samples: np.ndarray) -> tuple[np.ndarray, dict]:
        tasks = tuple(getattr(critic.config, "tasks", ()) or ())
        if self._language is not None and tasks:
            if self._language not in tasks:
                raise KeyError(f"the critic was not trained on task {self._language!r} (its tasks: {list(tasks)})")
            critic.config.deploy_task = self._language
        missing = [k for k in critic.observation_keys() if k not in obs]
        if missing:
            raise KeyError(f"the PA-RL critic reads {missing}, absent from the observation; use a critic trained on "
                           f"{sorted(obs)}")
        with torch.no_grad():
            o = critic._eval_prepared(obs)
            z = critic.critic_latent(o)
        cand = critic.to_policy_action(torch.as_tensor(samples, device=critic.device)).unsqueeze(0)
        low, high, frozen = critic_action_space(critic)
        res = optimize_actions(critic_q_fn(critic, o, z), cand, self.cfg, low, high, frozen, generator=self.generator)
        v = res.values[0]
        if not torch.all(torch.isfinite(v)):
            raise ValueError(f"critic values are not finite: {v.tolist()}")
        src = int(res.source[0, res.index[0]])
        action = critic.to_physical(res.chosen[0]).detach().cpu().numpy().astype(np.float32)
        if action.shape[0] > GRIPPER_INDEX:   # the sample's own gripper decision, exactly (never re-derived)
            action[GRIPPER_INDEX] = samples[src, GRIPPER_INDEX]
        fixed = list(getattr(critic.config, "fixed_action_dims", ()))
        if fixed:                             # dims the critic never varies: as the sample has them
            action[fixed] = samples[src, fixed]
        return action, {"index": src, "q_chosen": float(v[res.index[0]]), "q_spread": float(v.max() - v.min()),
                        "q_base_max": float(res.q_before[0].max()),
                        "value_gain": float((res.values - res.q_before).mean()), "k": int(v.shape[0])}

    def select(self, policy: Any, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        t0 = time.perf_counter()
        if self.critic_runner is not None:
            self.critic_runner.activate_staged()      # the control thread, between two ticks
        samples = np.asarray(policy.sample_actions(obs, self.cfg.num_base_actions), dtype=np.float32)   # (N, A)
        if samples.ndim != 2 or samples.shape[0] != self.cfg.num_base_actions:
            raise ValueError(f"sample_actions(obs, {self.cfg.num_base_actions}) returned shape {samples.shape}")
        t1 = time.perf_counter()
        # "mode"/"n"/"k"/"beta" name PA-RL in the store tag (selection_tag: "+parl:critic@vC:N32:K10:beta0").
        info: dict[str, Any] = {"mode": "parl", "n": int(samples.shape[0]), "k": min(self.cfg.num_keep, len(samples)),
                                "beta": 0.0 if self.cfg.selection == "argmax" else self.cfg.temperature}
        critic = self.critic
        action = samples[0]
        if critic is None:
            info.update(index=0, fallback="no critic loaded yet (announce one on critic_update)")
        else:
            try:
                action, opt_info = self._optimize(critic, obs, samples)
                info.update(opt_info)
            except Exception as e:  # noqa: BLE001 - a critic fault leaves the policy acting, un-optimised
                self.critic_fallbacks += 1
                log.error("PA-RL critic failed (%s: %s); executing the policy's first sample", type(e).__name__, e)
                action = samples[0]
                info.update(index=0, fallback=f"critic {type(e).__name__}: {e}")
            if self.critic_runner is not None and self.critic_runner.active is not None:
                info["critic_version"] = self.critic_runner.active.version
        info.update(sample_ms=round((t1 - t0) * 1e3, 3), select_ms=round((time.perf_counter() - t0) * 1e3, 3))
        return action, info


class SelectorActor:
    """An evaluation/online actor (robot_stack.learn.evaluate.Actor) that acts through an ActionSelector, with the
    gripper decision held as PolicyActor holds it for every policy."""

    def __init__(self, policy: Any, selector: ActionSelector, gripper_hold_steps: int = 5):
        from robot_stack.policies.gripper import GripperHold

        self.policy, self.selector = policy, selector
        self.gripper = GripperHold(gripper_hold_steps)
        self.infos: list[dict[str, Any]] = []

    @property
    def reads_environment_state(self) -> bool:
        keys = set(self.policy.observation_keys()) | set(getattr(self.selector, "observation_keys", list)())
        return ENV_STATE_KEY in keys

    def reset(self, task: str, seed: int, language: str) -> None:
        self.policy.reset()
        self.selector.reset()
        self.gripper.reset()

    def act(self, obs: dict[str, np.ndarray], sim: Any) -> np.ndarray:
        action, info = self.selector.select(self.policy, obs)
        self.infos.append(info)
        return self.gripper.apply(action)


# ================================================================================ the learner service
@dataclass
class PARLLearnerConfig(RLLearnerConfig):
    """RLLearnerConfig (the critic: policy_type/policy_config an actor_critic ensemble, algo_config PARLConfig) plus
    the base policy PA-RL fine-tunes (conf/learner/parl_*.yaml)."""

    algo: str = "parl"
    base_checkpoint: str = ""          # the BC-trained base policy's checkpoint (v#### dir or root); required
    base_lr: float = 5e-5              # diffusion fine-tuning lr (base_config.py); OpenVLA 2e-5 (real_config.py)
    base_weight_decay: float = 0.0
    distill_batch_size: int = 64       # reference 256 (diffusion) / 16 (OpenVLA)
    base_policy_utd: float = 1.0       # distillation steps per new online transition (train.py --base_policy_utd)
    distill_argmax: bool = False       # base config: a softmax(Q) draw; CALVIN config: argmax
    # Offline share of a distillation batch: −1 = N_off / (N_off + N_online) (train.py's distillation batches), else
    # a fixed fraction (0 = online data only, as the OpenVLA runs without demos).
    distill_mixing_ratio: float = -1.0
    cache_block_states: int = 32       # states per base-sampling batch when the candidate cache is (re)built

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PARLLearnerConfig:
        cfg = super().from_dict(d)
        if cfg.algo != "parl":
            raise ValueError(f"the PA-RL learner trains algo 'parl', got {cfg.algo!r}")
        if not cfg.base_checkpoint:
            raise ValueError("learner.base_checkpoint is empty: PA-RL fine-tunes a pre-trained policy; pass its "
                             "checkpoint, e.g. learner.base_checkpoint=data/checkpoints/rig/diffusion/latest")
        if cfg.distill_batch_size < 1 or cfg.base_policy_utd < 0:
            raise ValueError("distill_batch_size must be >= 1 and base_policy_utd >= 0")
        return cfg


class _PoolIndex:
    """Episode rows of a TransitionDataset (episodes are contiguous; an episode's last row is its own next)."""

    def __init__(self, pool: Any):
        nxt = pool.arrays["next_index"]
        ends = np.flatnonzero(nxt == np.arange(len(nxt)))
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts + 1
        self.first, self.last = np.repeat(starts, lengths), np.repeat(ends, lengths)
        self.n = len(nxt)

    def window(self, idx: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
        """(B, len(offsets)) rows, clamped inside each row's episode (FrameDataset.sample_window's padding)."""
        rows = idx[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]
        return np.clip(rows, self.first[idx, None], self.last[idx, None])


class PARLLearnerService(RLLearnerService):
    """The RL learner service with PA-RL's base policy (module docstring). Checkpoints: base policy versions in
    `checkpoint_dir` (what the inference node loads), critic versions in `checkpoint_dir/critic` (the critic's own
    version line; its train state resumes the critic and the step)."""

    _thread_name = "parl-learner"

    def __init__(self, store_path: str | Path, checkpoint_dir: str | Path, cfg: PARLLearnerConfig,
                 announce: Callable | None = None, on_progress: Callable | None = None):
        super().__init__(store_path, Path(checkpoint_dir) / "critic", cfg, announce, on_progress)
        self.base_dir = Path(checkpoint_dir)
        self.base_policy: Any = None
        self.base_version = 0
        self.distill_step = 0
        self.distill_history: list[dict[str, float]] = []
        self._distill_budget = 0.0
        self._caches: dict[int, dict[str, Any]] = {}

    # ---- base policy --------------------------------------------------------------------------------
    def _load_base(self) -> None:
        from robot_stack.policies.checkpoint import latest_checkpoint, load_policy

        own = latest_checkpoint(self.base_dir) if self.base_dir.is_dir() else None
        path = own or Path(self.cfg.base_checkpoint)
        policy, manifest = load_policy(path, device=self.cfg.device)
        self.base_policy, self.base_normalizer = policy, policy.normalizer
        self.base = make_base(policy)
        self.base_version = manifest.version if own is not None else 0
        self._base_opt = torch.optim.AdamW(self.base.parameters(), lr=self.cfg.base_lr,
                                           weight_decay=self.cfg.base_weight_decay)
        log.info("PA-RL base policy %s (%s, %s)", path, manifest.policy_type, type(self.base).__name__)

    def _policy_config_dict(self) -> dict[str, Any]:
        """The critic's config, marked as a critic checkpoint (checkpoint.checkpoint_kind): a policy runner refuses
        it (its SAC actor is untrained) and the learner node announces it on critic_update."""
        from robot_stack.policies.checkpoint import CRITIC_KIND

        d = super()._policy_config_dict()
        d["extra"] = {**(d.get("extra") or {}), "kind": CRITIC_KIND}
        return d

    def _obs_keys(self, policy_config: Any) -> list[str]:
        keys = super()._obs_keys(policy_config)
        return keys + [k for k in self.base_policy.observation_keys() if k not in keys]

    def open(self) -> Any | None:
        self._load_base()
        store = super().open()
        if store is not None:
            if not isinstance(self.algo, PARL):
                raise ValueError(f"the PA-RL learner resumed a {self.cfg.algo!r} critic; use another checkpoint dir")
            self._refresh_caches(resample=True)
        return store

    # ---- candidate cache ----------------------------------------------------------------------------
    def _pools(self) -> list[Any]:
        return [self.prior_pool, self.target_pool, self.val_pool, self.online_pool]

    def _refresh_caches(self, resample: bool = False) -> None:
        """N base samples for every pool row not cached yet (every row when `resample`: the base changed)."""
        t0, total = time.perf_counter(), 0
        for pool in self._pools():
            if not len(pool):
                continue
            c = self._caches.get(id(pool))
            start = 0 if (c is None or resample) else c["n"]
            if start >= len(pool):
                continue
            chunks, cand = self._sample_rows(pool, np.arange(start, len(pool)))
            if start > 0:
                chunks, cand = torch.cat([c["chunks"], chunks]), torch.cat([c["cand"], cand])
            self._caches[id(pool)] = {"n": len(pool), "chunks": chunks, "cand": cand, "index": _PoolIndex(pool)}
            total += len(pool) - start
        if total:
            log.info("PA-RL: %d base samples for each of %d states in %.1f s", self.algo.opt_cfg.num_base_actions,
                     total, time.perf_counter() - t0)

    def _tasks_of(self, pool: Any, rows: np.ndarray) -> list[str]:
        ti = pool.arrays["task_index"][rows]
        return [self.tasks[int(i)] if self.tasks else "" for i in ti]

    def _history(self, pool: Any, index: _PoolIndex, rows: np.ndarray) -> dict[str, torch.Tensor]:
        win = index.window(rows, self.base.obs_offsets)
        a = pool.arrays
        dev = torch.device(self.cfg.device)
        return {k: torch.from_numpy(np.ascontiguousarray(a[k][win])).to(dev) for k in self.base_policy.observation_keys()}

    @torch.no_grad()
    def _sample_rows(self, pool: Any, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (chunks (R, N, T_p, A) physical, candidates (R, N, A) critic-normalised first actions), on the CPU."""
        index = _PoolIndex(pool)
        n = self.algo.opt_cfg.num_base_actions
        self.base_policy.eval()
        chunks = []
        block = max(1, int(self.cfg.cache_block_states))
        for s in range(0, len(rows), block):
            r = rows[s:s + block]
            chunks.append(self.base.sample(self._history(pool, index, r), n, self._tasks_of(pool, r)).float().cpu())
        out = torch.cat(chunks)
        cand = self.policy.to_policy_action(out[:, :, self.base.exec_index].to(self.policy.device)).cpu()
        return out, cand

    # ---- batches ------------------------------------------------------------------------------------
    def _sample(self, pool: Any, n: int, rng: np.random.Generator, distill: bool = False) -> dict[str, torch.Tensor]:
        """n transitions of one pool with their cached candidates (TransitionDataset.sample's keys + CAND_KEY at s
        and s'); `distill` adds the base's observation windows, the cached chunks and the dataset chunk."""
        if n <= 0:
            return {}
        c = self._caches.get(id(pool))
        if c is None or c["n"] != len(pool):
            raise RuntimeError("PA-RL candidate cache is stale (pool grew without _refresh_caches); this is a bug")
        a = pool.arrays
        idx = rng.integers(0, len(pool), size=n)
        nxt = a["next_index"][idx]
        keys = [*pool.obs_keys, ACTION_KEY, "reward", "mask", "mc_return", "task_index", "success"]
        out = {k: torch.from_numpy(np.ascontiguousarray(a[k][idx])) for k in keys}
        out.update({NEXT + k: torch.from_numpy(np.ascontiguousarray(a[k][nxt])) for k in pool.obs_keys})
        ti, tn = torch.from_numpy(idx), torch.from_numpy(nxt)
        out[CAND_KEY], out[NEXT + CAND_KEY] = c["cand"][ti], c["cand"][tn]
        if distill:
            index = c["index"]
            for k, v in self._history(pool, index, idx).items():
                out[HIST_PREFIX + k] = v.cpu()
            out[CHUNKS_KEY] = c["chunks"][ti]
            win = index.window(idx, self.base.action_offsets)
            out[DATA_CHUNK_KEY] = torch.from_numpy(np.ascontiguousarray(a[ACTION_KEY][win]))
        return out

    def _offline_batch(self, step: int, n: int, rng: np.random.Generator, distill: bool = False
                       ) -> dict[str, torch.Tensor]:
        from robot_stack.learn.mixing import split_batch
        from robot_stack.learn.rl_dataset import concat_batches

        if n <= 0:
            return {}
        prior, target = self.prior_pool, self.target_pool
        if not len(target):
            return self._sample(prior, n, rng, distill)
        if not len(prior):
            return self._sample(target, n, rng, distill)
        n0, n1 = split_batch(n, self.schedule.ratio_at(step))
        return concat_batches([self._sample(prior, n0, rng, distill), self._sample(target, n1, rng, distill)])

    def make_batch(self, step: int, distill: bool = False, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """A pure function of (seed, rank, step, distill) and the pools, as the parent's."""
        from robot_stack.learn.mixing import offline_online_ratio
        from robot_stack.learn.rl_dataset import concat_batches

        cfg = self.cfg
        bs = batch_size or cfg.batch_size
        rng = np.random.default_rng([cfg.seed, self._rank, step, int(distill)])
        if self.phase == "online" and len(self.online_pool):
            ratio = offline_online_ratio(cfg.distill_mixing_ratio if distill else cfg.mixing_ratio,
                                         self._n_offline(), len(self.online_pool))
            offline = self._offline_batch(step, int(round(ratio * bs)), rng, distill)
            n_off = len(offline[ACTION_KEY]) if offline else 0
            online = self._sample(self.online_pool, bs - n_off, rng, distill)
            return shuffle_batch(concat_batches([offline, online]), rng)
        return shuffle_batch(self._offline_batch(step, bs, rng, distill), rng)

    def _validate(self) -> None:
        if not len(self.val_pool):
            return
        rng = np.random.default_rng([self.cfg.seed, 1_000_003, self.step])
        dev = torch.device(self.cfg.device)
        out: dict[str, float] = {}
        n = self.cfg.val_batch_size
        for name, batch in (("val", self._sample(self.val_pool, n, rng)), ("train", self._offline_batch(self.step, n, rng))):
            for k, v in self.algo.evaluate({k: t.to(dev) for k, t in batch.items()}).items():
                out[f"eval/{name}_{k}"] = v
        out["step"] = float(self.step)
        self.val_history.append(out)
        self._progress.scalars(self.step, {k: v for k, v in out.items() if k != "step"})

    # ---- distillation -------------------------------------------------------------------------------
    def distill(self, n: int) -> int:
        """n distillation steps of the base policy on optimised actions; returns the number taken."""
        cfg = self.cfg
        dev = torch.device(cfg.device)
        gen = torch.Generator(device="cpu")
        done = 0
        for _ in range(n):
            if self._stop.is_set():
                break
            step = self.distill_step
            batch = {k: v.to(dev) for k, v in self.make_batch(step, distill=True,
                                                               batch_size=cfg.distill_batch_size).items()}
            gen.manual_seed(int(cfg.seed) * 1_000_003 + step)
            target, info = distillation_targets(self.algo, self.base, batch, cfg.distill_argmax, gen)
            hist = {k[len(HIST_PREFIX):]: v for k, v in batch.items() if k.startswith(HIST_PREFIX)}
            tasks = [self.tasks[int(i)] if self.tasks else "" for i in batch["task_index"].cpu()]
            self.base_policy.train()
            loss, binfo = self.base.loss(hist, target, tasks)
            self._base_opt.zero_grad(set_to_none=True)
            loss.backward()
            self._base_opt.step()
            self.base.after_step()
            self.distill_step += 1
            done += 1
            info.update({f"distill/{k}": float(v) for k, v in binfo.items()})
            info["distill/step"] = float(self.distill_step)
            self.distill_history.append(info)
            if self.distill_step % max(1, cfg.log_every_steps) == 0:
                log.info("[distill] step %d  loss %.4f  Q gain %.3g  data chosen %.2f", self.distill_step,
                         info["distill/loss"], info["distill/value_gain"], info["distill/data_action_chosen"])
        self.base_policy.eval()
        return done

    def save_base(self) -> Path | None:
        """Publish the distilled base policy as the next version of `checkpoint_dir` and announce it."""
        from robot_stack.inference.manifest import make_update
        from robot_stack.policies.checkpoint import list_versions, save_checkpoint

        if not self._main:
            return None
        parent = self.base_version or None
        self.base_version = max([self.base_version, *list_versions(self.base_dir)]) + 1
        extra = {"algo": "parl", "critic_version": self.version, "critic_step": self.step,
                 "base_checkpoint": str(self.cfg.base_checkpoint), "online_transitions": len(self.online_pool)}
        fingerprint = getattr(self.base_policy.config, "base_fingerprint", None)
        if fingerprint:
            extra["base_fingerprint"] = fingerprint
        path = save_checkpoint(self.base_policy, self.base_normalizer, self._schema, self.base_dir,
                               self.base_version, self.distill_step, parent=parent, extra=extra)
        self._announce(make_update(path))
        return path

    # ---- online -------------------------------------------------------------------------------------
    def online_round(self, store: Any, save: bool = False) -> int:
        """One round in PA-RL's train.py order: take in new episodes (sampled with the current base), distil
        base_policy_utd·new steps, re-sample every cached state with the new base, then utd_ratio·new critic
        steps; save=True publishes a base and a critic version. Returns the critic updates taken."""
        cfg = self.cfg
        new = self._take_in_online(store)
        if new:
            self._refresh_caches()
        self._budget += cfg.utd_ratio * new
        self._distill_budget += cfg.base_policy_utd * new
        n_distill = int(self._distill_budget)
        distilled = self.distill(n_distill) if n_distill > 0 else 0
        self._distill_budget -= distilled
        if distilled:
            self._refresh_caches(resample=True)
        taken = self._spend_budget(save)
        if distilled:   # every distilled base is published: it is what acts next
            self.save_base()
        return taken

    def make_actor(self, selection: str = "argmax", gripper_hold_steps: int = 5) -> SelectorActor:
        """What acts while practising: the current base policy through PARLSelector with the live critic."""
        opt = {**self.algo.config.action_opt, "selection": selection}
        return SelectorActor(self.base_policy, PARLSelector(self.policy, opt, seed=self.cfg.seed),
                             gripper_hold_steps)
