"""`actor_critic`: the PTR / Cal-QL image policy + critic (reference/algorithms.md §0 and §1 "Networks").

    obs {images (B, H, W, 3) uint8 per camera, state (B, S)} + task (index into config.tasks)
      ─► prepare_obs: resize, [train: crop pad 4 + colour jitter] ─► images (B, 3, P, P) per camera, cond (B, D)
      actor:  actor_encoder(images, FiLM cond) ─► z_π (B, 256) ─► MLP [z_π, cond, (state)] ─► mean, log_std (B, A)
              tanh-Gaussian: a = tanh(mean + σ ε); log_std = clip(1.0·raw − 1.0, −20, 2) (§0)
      critic: critic_encoder(images, FiLM cond) ─► z_Q (B, 256); per head i (num_qs=2, twin; or an ensemble):
              h_0 = ReLU(W_0 [cond, a, z_Q]);  h_l = ReLU(W_l [h_{l−1}, a, z_Q])  (action-sep + pixel-sep: the action
              and the image latent are re-fed at every layer, PTR §1);  Q_i = W_out h_L  (init scale 1e-2)
      target critic: a Polyak copy of critic_encoder + heads (τ = 5e-3), kept in the state dict so a resumed run
              continues exactly; log α (SAC temperature) and log α' (CQL Lagrange) are parameters here for the same reason.

Actions inside are normalised to [−1, 1]^A: the normaliser's affine map for the arm dims and 2g − 1 for the
gripper (absolute in [0, 1]); outside (select_action, sample_actions, q_values) everything is physical.
Task conditioning: `conditioning=onehot` (PTR: one-hot task id into the MLPs) or `language` (text-encoder
embedding into the MLPs and FiLM per residual block, V-GPS style); `task_embeddings` (T, D) is a saved buffer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.base import POLICIES, Policy, PolicyConfig
from robot_stack.policies.encoders import EncoderSpec, ImageEncoder, augment
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, STATE_KEY, image_key

CONDITIONINGS = ("none", "onehot", "language")
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
# Keeps atanh(dataset action) finite for BC log-likelihoods of actions at the [-1, 1] boundary.
_ACTION_EPS = 1e-4


@dataclass
class ActorCriticConfig(PolicyConfig):
    cameras: tuple[str, ...] = ("front", "wrist")
    arch: str = "resnet18"                      # resnet18 | resnet34 (PTR) | resnet_tiny (tests)
    base_width: int = 64
    norm_groups: int = 4
    num_spatial_embeddings: int = 8
    latent_dim: int = 256
    image_size_px: int = 128
    crop_pad_px: int = 4                        # PTR random crop, edge pad 4
    color_jitter: bool = True
    actor_hidden_dims: tuple[int, ...] = (256, 256, 256)    # PTR LearnedStdTanhNormalPolicy (256, 256, 256)
    critic_hidden_dims: tuple[int, ...] = (256, 256, 256)   # PTR critic MLP (256, 256, 256)
    num_qs: int = 2                             # twin critics (PTR num_qs=2); >2 = ensemble, min over heads
    use_state: bool = False                     # PTR only_pixels=True: proprio not fed
    conditioning: str = "onehot"
    tasks: tuple[str, ...] = ()                 # task (language) strings, index = task id; () = unconditioned
    deploy_task: str | None = None              # the task select_action conditions on (default tasks[0])
    task_embedding_dim: int = 0                 # language: the text encoder's D (filled by the learner)
    film: bool = True                           # language: FiLM per residual block
    log_std_multiplier: float = 1.0             # log_std = multiplier·raw + offset (§0)
    log_std_offset: float = -1.0
    critic_final_init_scale: float = 1e-2
    init_temperature: float = 1.0               # SAC α at start (PTR init temperature 1.0)
    init_alpha_prime: float = 1.0               # CQL Lagrange α' at start (Cal-QL note 5)
    extra: dict[str, Any] = field(default_factory=dict)   # free-form provenance (algo, text encoder), JSON only

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.arch, self.base_width, self.norm_groups, self.num_spatial_embeddings,
                           self.latent_dim, self.image_size_px)

    def cond_dim(self) -> int:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning {self.conditioning!r}; known: {CONDITIONINGS}")
        if self.conditioning == "none" or not self.tasks:
            return 0
        if self.conditioning == "onehot":
            return len(self.tasks)
        if self.task_embedding_dim <= 0:
            raise ValueError("conditioning=language needs task_embedding_dim > 0 (the text encoder's size)")
        return self.task_embedding_dim


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        lin = nn.Linear(a, b)
        nn.init.orthogonal_(lin.weight, gain=math.sqrt(2.0))   # orthogonal_init=True (§0)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers)


class CriticHead(nn.Module):
    """One Q head with action-sep + pixel-sep inputs. z (B, L), cond (B, D) or None, a (B, N, A) -> Q (B, N)."""

    def __init__(self, latent_dim: int, cond_dim: int, action_dim: int, hidden: tuple[int, ...], final_scale: float):
        super().__init__()
        self.layers = nn.ModuleList()
        in_dim = cond_dim + action_dim + latent_dim
        for h in hidden:
            lin = nn.Linear(in_dim, h)
            nn.init.orthogonal_(lin.weight, gain=math.sqrt(2.0))
            nn.init.zeros_(lin.bias)
            self.layers.append(lin)
            in_dim = h + action_dim + latent_dim
        self.out = nn.Linear(hidden[-1] if hidden else in_dim, 1)
        nn.init.orthogonal_(self.out.weight, gain=final_scale)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
        n = a.shape[1]
        zz = z.unsqueeze(1).expand(-1, n, -1)
        x = torch.cat([*(() if cond is None else (cond.unsqueeze(1).expand(-1, n, -1),)), a, zz], dim=-1)
        for i, lin in enumerate(self.layers):
            x = F.relu(lin(x if i == 0 else torch.cat([x, a, zz], dim=-1)))
        return self.out(x).squeeze(-1)


class Critic(nn.Module):
    """Image encoder + num_qs heads: obs images/cond/state + actions (B, N, A) -> Q (num_qs, B, N)."""

    def __init__(self, cfg: ActorCriticConfig, action_dim: int, state_dim: int):
        super().__init__()
        cond = cfg.cond_dim()
        self.encoder = ImageEncoder(cfg.encoder_spec(), cfg.cameras, cond if (cfg.film and cfg.conditioning ==
                                                                              "language") else 0)
        extra = state_dim if cfg.use_state else 0
        self.heads = nn.ModuleList([CriticHead(cfg.latent_dim + extra, cond, action_dim, cfg.critic_hidden_dims,
                                               cfg.critic_final_init_scale) for _ in range(cfg.num_qs)])
        self.use_state = cfg.use_state

    def latent(self, images: dict[str, torch.Tensor], cond: torch.Tensor | None, state: torch.Tensor) -> torch.Tensor:
        z = self.encoder(images, cond)
        return torch.cat([z, state], dim=-1) if self.use_state else z

    def heads_q(self, z: torch.Tensor, cond: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        return torch.stack([h(z, cond, actions) for h in self.heads])


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u ~ N(mean, σ): Σ_d [log N(u_d) − log(1 − tanh²(u_d))], the latter written stably as
    2(log 2 − u − softplus(−2u)) (SAC appendix C). Shapes (..., A) -> (...)."""
    normal = -0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    correction = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (normal - correction).sum(-1)


@POLICIES.register("actor_critic")
class ActorCriticPolicy(Policy):
    name = "actor_critic"
    config_class = ActorCriticConfig

    def __init__(self, config: ActorCriticConfig, normalizer: Normalizer):
        super().__init__(config, normalizer)
        a_dim, s_dim = normalizer.action_dim, normalizer.state_dim
        self.action_dim = a_dim
        cond = config.cond_dim()
        film_dim = cond if (config.film and config.conditioning == "language") else 0
        self.actor_encoder = ImageEncoder(config.encoder_spec(), config.cameras, film_dim)
        actor_in = config.latent_dim + cond + (s_dim if config.use_state else 0)
        self.actor_trunk = _mlp([actor_in, *config.actor_hidden_dims])
        last = config.actor_hidden_dims[-1] if config.actor_hidden_dims else actor_in
        self.actor_mean = nn.Linear(last, a_dim)
        self.actor_log_std = nn.Linear(last, a_dim)
        for lin in (self.actor_mean, self.actor_log_std):
            nn.init.orthogonal_(lin.weight, gain=1e-2)
            nn.init.zeros_(lin.bias)
        self.critic = Critic(config, a_dim, s_dim)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.log_alpha_prime = nn.Parameter(torch.tensor(math.log(config.init_alpha_prime)))
        # One-hot: the identity; language: filled by the learner from the text encoder (saved with the weights).
        emb = torch.eye(len(config.tasks)) if config.conditioning == "onehot" else torch.zeros(len(config.tasks), cond)
        self.register_buffer("task_embeddings", emb if cond > 0 else torch.zeros(0, 0))
        passthrough = torch.zeros(a_dim, dtype=torch.bool)
        passthrough[list(normalizer.passthrough_dims)] = True
        self.register_buffer("_passthrough", passthrough, persistent=False)

    # ---- parameter groups for the algorithms -------------------------------------------------------
    def actor_parameters(self) -> list[nn.Parameter]:
        return [*self.actor_encoder.parameters(), *self.actor_trunk.parameters(), *self.actor_mean.parameters(),
                *self.actor_log_std.parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """Polyak averaging θ̄ ← (1 − τ)θ̄ + τθ (soft target update τ = 5e-3, §0)."""
        for p, tp in zip(self.critic.parameters(), self.target_critic.parameters(), strict=True):
            tp.lerp_(p, tau)

    # ---- units ------------------------------------------------------------------------------------
    def to_policy_action(self, action: torch.Tensor) -> torch.Tensor:
        """(..., A) physical -> (..., A) in [−1, 1]: normaliser affine (clipped to [q01, q99]); gripper 2g − 1."""
        a = action.float() * self._norm_action_scale + self._norm_action_offset
        a = torch.where(self._passthrough, 2.0 * a - 1.0, a)
        return a.clamp(-1.0, 1.0)

    def to_physical(self, a: torch.Tensor) -> torch.Tensor:
        """(..., A) in [−1, 1] -> (..., A) physical."""
        a = torch.where(self._passthrough, (a + 1.0) / 2.0, a)
        return a * self._norm_action_inv_scale + self._norm_action_inv_offset

    def task_index_of(self, task: str | None) -> int:
        tasks = self.config.tasks
        if not tasks:
            return 0
        task = task if task is not None else (self.config.deploy_task or tasks[0])
        if task not in tasks:
            raise KeyError(f"task {task!r} is not one this policy was trained on: {list(tasks)}")
        return tasks.index(task)

    # ---- forward pieces ---------------------------------------------------------------------------
    def prepare_obs(self, batch: dict[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
        """Batch (B, ...) -> {"images": {cam: (B, 3, P, P)}, "cond": (B, D) | None, "state": (B, S)}.
        Augments (crop + jitter) in train mode; `prefix="next."` reads the next observation."""
        images = {}
        for cam in self.config.cameras:
            x = self.actor_encoder.preprocess(batch[prefix + image_key(cam)])
            images[cam] = augment(x, self.config.crop_pad_px, self.config.color_jitter) if self.training else x
        state = (batch[prefix + STATE_KEY].float() - self._norm_state_mean) / self._norm_state_std
        cond = None
        if self.task_embeddings.numel() > 0:
            idx = batch.get("task_index")
            if idx is None:
                idx = torch.full((state.shape[0],), self.task_index_of(None), dtype=torch.long, device=state.device)
            cond = self.task_embeddings[idx]
        return {"images": images, "cond": cond, "state": state}

    def actor_dist(self, o: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared obs -> (mean, log_std), (B, A) each, pre-tanh."""
        z = self.actor_encoder(o["images"], o["cond"] if self.actor_encoder_film else None)
        parts = [z] + ([o["cond"]] if o["cond"] is not None else []) + ([o["state"]] if self.config.use_state else [])
        h = self.actor_trunk(torch.cat(parts, dim=-1))
        raw = self.actor_log_std(h)
        log_std = (self.config.log_std_multiplier * raw + self.config.log_std_offset).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.actor_mean(h), log_std

    @property
    def actor_encoder_film(self) -> bool:
        return self.config.film and self.config.conditioning == "language"

    @staticmethod
    def sample_from(mean: torch.Tensor, log_std: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n reparameterised samples: actions (B, n, A) in (−1, 1) and log π (B, n)."""
        eps = torch.randn(mean.shape[0], n, mean.shape[1], device=mean.device, dtype=mean.dtype)
        u = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * eps
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean.unsqueeze(1), log_std.unsqueeze(1))

    def critic_q(self, o: dict[str, Any], actions: torch.Tensor, target: bool = False,
                 z: torch.Tensor | None = None) -> torch.Tensor:
        """Q_i(s, a) for actions (B, N, A) normalised -> (num_qs, B, N). `z`: a precomputed critic latent."""
        critic = self.target_critic if target else self.critic
        film = o["cond"] if self.actor_encoder_film else None
        if z is None:
            z = critic.latent(o["images"], film, o["state"])
        return critic.heads_q(z, o["cond"], actions)

    # ---- Policy interface (physical units) --------------------------------------------------------
    def _obs_batch(self, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        missing = [k for k in self.observation_keys() if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; actor_critic was trained on {self.observation_keys()}")
        # torch.tensor copies: observations decoded from ROS messages are read-only views of the bytes.
        return {k: torch.tensor(np.asarray(obs[k]), device=self.device).unsqueeze(0) for k in self.observation_keys()}

    @torch.no_grad()
    def _eval_prepared(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        was = self.training
        self.eval()
        try:
            return self.prepare_obs(self._obs_batch(obs))
        finally:
            self.train(was)

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Deterministic evaluation action tanh(mean) (§0) -> float32 (A,) physical."""
        mean, _ = self.actor_dist(self._eval_prepared(obs))
        return self.to_physical(torch.tanh(mean[0])).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def sample_actions(self, obs: dict[str, np.ndarray], k: int) -> np.ndarray:
        """k stochastic actions from π(·|obs) -> float32 (k, A) physical."""
        mean, log_std = self.actor_dist(self._eval_prepared(obs))
        actions, _ = self.sample_from(mean, log_std, k)
        return self.to_physical(actions[0]).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def q_values(self, obs: dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        """Q(obs, a_k) for physical actions (K, A) -> float32 (K,), the min over the heads (critic_reduction=min)."""
        o = self._eval_prepared(obs)
        a = self.to_policy_action(torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device))
        return self.critic_q(o, a.unsqueeze(0)).min(0).values[0].cpu().numpy().astype(np.float32)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Actor-only behaviour cloning on the RL encoder: −log π(a_data | s) (tanh-Gaussian NLL)."""
        o = self.prepare_obs(batch)
        mean, log_std = self.actor_dist(o)
        a = self.to_policy_action(batch[ACTION_KEY]).clamp(-1 + _ACTION_EPS, 1 - _ACTION_EPS)
        nll = -tanh_gaussian_log_prob(torch.atanh(a), mean, log_std).mean()
        mse = F.mse_loss(torch.tanh(mean), a)
        return nll, {"loss": float(nll.detach()), "bc_mse": float(mse.detach())}
