"""`actor_critic`: the PTR / Cal-QL / RLPD policy + critic (reference/algorithms.md §0 and §1 "Networks").

    obs {images (B, H, W, 3) uint8 per camera, state (B, S), [environment_state (B, E)]} + task (index into tasks)
      ─► prepare_obs: resize, [train: crop pad 4 + colour jitter] ─► images (B, 3, P, P) per camera, cond (B, D),
         standardised state / environment state
      actor:  actor_encoder(images, FiLM cond) ─► z_π (B, 256) ─► MLP [z_π, cond, (low-dim)] ─► mean, log_std (B, A)
              (`arch: none`, the state mode: no image encoder; actor_encoder = Dense(latent) ─► LayerNorm ─► tanh over
              the standardised [state, environment state], the same heads, losses and learner)
              tanh-Gaussian: a = tanh(mean + σ ε); log_std = clip(1.0·raw − 1.0, −20, 2) (§0)
      critic: critic_encoder(images, FiLM cond) ─► z_Q (B, 256); per head i (num_qs=2, twin; or an ensemble):
              h_0 = ReLU(W_0 [cond, a, z_Q]);  h_l = ReLU(W_l [h_{l−1}, a, z_Q])  (action-sep + pixel-sep: the action
              and the image latent are re-fed at every layer, PTR §1);  Q_i = W_out h_L  (init scale 1e-2);
              `critic_layer_norm`: LayerNorm before each ReLU (RLPD's key change, Ball et al. 2023; SERL
              `use_layer_norm: True`)
      target critic: a Polyak copy of critic_encoder + heads (τ = 5e-3), kept in the state dict so a resumed run
              continues exactly; log α (SAC temperature) and log α' (CQL Lagrange) are parameters here for the same reason.

Actions inside are normalised to [−1, 1]^A: the normaliser's affine map for the arm dims and 2g − 1 for the
gripper (absolute in [0, 1]); outside (select_action, sample_actions, q_values) everything is physical.

The gripper is a binary decision wherever this policy produces one (DESIGN.md §3): its actor output u_g is a
logit. BC trains it with BCE (p(open) = σ(2u_g) = (tanh(u_g) + 1)/2); an executed action opens (1.0) iff u_g > 0
(select_action) or iff its sample says so (sample_actions). In RL (`discrete_gripper`, default) the policy samples
g ∈ {−1, +1} from Bernoulli(σ(u_g)) and the actor loss takes the exact expectation over both values
(`actor_objective`), so the critic is only ever queried at ±1, as the data holds; online exploration holds the
decision across steps (robot_stack.policies.gripper.GripperHold).
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
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, GRIPPER_INDEX, STATE_KEY, image_key

CONDITIONINGS = ("none", "onehot", "language")
STATE_ARCH = "none"          # `arch: none`: no image encoder, low-dimensional (state) observations only
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass
class ActorCriticConfig(PolicyConfig):
    cameras: tuple[str, ...] = ("front", "wrist")
    arch: str = "resnet18"                      # resnet18 | resnet34 (PTR) | resnet_tiny (tests) | none (state mode)
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
    use_environment_state: bool = False         # feed observation.environment_state (privileged object state)
    # State mode's augmentation (the analogue of crop + jitter): Gaussian noise of this std on the standardised
    # state / environment state while training. 0 = off.
    low_dim_noise_std: float = 0.0
    critic_layer_norm: bool = False             # LayerNorm in the critic MLP (RLPD / SERL)
    gripper_loss_weight: float = 1.0            # BC: MSE(arm dims) + w·BCE(gripper), as bc_conv
    discrete_gripper: bool = True               # RL: the gripper a Bernoulli decision (see sample_from)
    # Action dims the policy never moves (held at physical 0 in every action it produces, data actions included):
    # a task's reduced action space, as SERL's franka_sim PandaPickCube commands xyz + grasp only. Exploration
    # noise on them is pure harm: on put_cube_in_bowl, 0.025 rad/step of roll/pitch noise on a BC policy takes
    # success from 7/20 to 0/20 (yaw: 11/20), while the demos' roll/pitch std is 0.003 rad (learning.md).
    fixed_action_dims: tuple[int, ...] = ()
    conditioning: str = "onehot"
    tasks: tuple[str, ...] = ()                 # task (language) strings, index = task id; () = unconditioned
    deploy_task: str | None = None              # the task select_action conditions on (default tasks[0])
    task_embedding_dim: int = 0                 # language: the text encoder's D (filled by the learner)
    film: bool = True                           # language: FiLM per residual block
    # State mode: the task embedding also enters the low-dim encoder's input (its first layer), not only the MLPs.
    # With object state for every object in the scene the encoder must pick the task's objects; behind a one-layer
    # tanh bottleneck that sees no task, multi-task BC underfits (learning_findings.md, PTR re-diagnosis).
    condition_low_dim_encoder: bool = False
    # State mode with conditioning=language and film: FiLM on the low-dim encoder's pre-activation,
    # h·(1 + γ(c)) + β(c) with γ, β Dense layers zero-initialised (V-GPS jaxrl_m/vision/film_conditioning_layer.py
    # applies the same form after every ResNet block; here the state encoder has one layer to modulate). Off by
    # default so existing state-mode checkpoints keep their state-dict keys; the V-GPS critic recipe turns it on.
    low_dim_film: bool = False
    log_std_multiplier: float = 1.0             # log_std = multiplier·raw + offset (§0)
    log_std_offset: float = -1.0
    critic_final_init_scale: float = 1e-2
    init_temperature: float = 1.0               # SAC α at start (PTR init temperature 1.0)
    init_alpha_prime: float = 1.0               # CQL Lagrange α' at start (Cal-QL note 5)
    extra: dict[str, Any] = field(default_factory=dict)   # free-form provenance (algo, text encoder), JSON only

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.arch, self.base_width, self.norm_groups, self.num_spatial_embeddings,
                           self.latent_dim, self.image_size_px)

    @property
    def state_mode(self) -> bool:
        return self.arch == STATE_ARCH

    def validate(self) -> None:
        validate_inputs(self)

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


def validate_inputs(cfg: Any) -> None:
    """A policy config's observation inputs are consistent (any config with arch, cameras, use_state and
    use_environment_state: actor_critic, diffusion): state mode reads no camera and some low-dim input; an image
    arch reads at least one camera."""
    if cfg.arch == STATE_ARCH:
        if cfg.cameras:
            raise ValueError(f"arch=none (state mode) reads no cameras; set cameras: [] (got {list(cfg.cameras)})")
        if not (cfg.use_state or cfg.use_environment_state):
            raise ValueError("arch=none needs low-dimensional input: set use_state and/or use_environment_state")
    elif not cfg.cameras:
        raise ValueError(f"arch={cfg.arch!r} needs at least one camera; for state-only input use arch: none")


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        lin = nn.Linear(a, b)
        nn.init.orthogonal_(lin.weight, gain=math.sqrt(2.0))   # orthogonal_init=True (§0)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers)


class CriticHeads(nn.Module):
    """The critic's `num_qs` Q heads, evaluated as one batched network: z (B, L), cond (B, D) or None, a (B, N, A)
    -> Q (E, B, N). Each head has action-sep + pixel-sep inputs (module docstring).

    Head i's layer l is the slice `weight_l[i]` (in, out) of one stacked tensor, so an E-head ensemble costs one
    matmul per layer instead of E: RLPD's 10-head critic spent ~200 ms per update in a Python loop over heads on
    this CPU (benchmarks/results/learner.md). The input [a, z] re-fed at every layer is shared by all heads, so its
    product is computed once and broadcast. Initialisation per head and layer as before (orthogonal, gain √2; the
    output layer's gain `final_scale`); LayerNorm has a per-head affine. A state dict from the per-head layout
    (heads.{i}.layers.{l}.weight ...) still loads: `_load_from_state_dict` stacks it.
    """

    def __init__(self, num_heads: int, latent_dim: int, cond_dim: int, action_dim: int, hidden: tuple[int, ...],
                 final_scale: float, layer_norm: bool = False):
        super().__init__()
        self.num_heads, self.layer_norm = num_heads, layer_norm
        self.hidden = tuple(int(h) for h in hidden)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        self.norm_weights, self.norm_biases = nn.ParameterList(), nn.ParameterList()
        in_dim = cond_dim + action_dim + latent_dim
        for layer, h in enumerate((*self.hidden, 1)):
            is_out = layer == len(self.hidden)
            w = torch.empty(num_heads, in_dim, h)
            for i in range(num_heads):    # as nn.Linear(in, h) per head (weight (h, in)), orthogonal
                nn.init.orthogonal_(w[i].T, gain=final_scale if is_out else math.sqrt(2.0))
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(num_heads, 1, h)))
            if layer_norm and not is_out:
                self.norm_weights.append(nn.Parameter(torch.ones(num_heads, 1, h)))
                self.norm_biases.append(nn.Parameter(torch.zeros(num_heads, 1, h)))
            in_dim = h + (0 if layer == len(self.hidden) - 1 else action_dim + latent_dim)   # the output reads h only

    def __len__(self) -> int:
        return self.num_heads

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
        B, n = a.shape[:2]
        zz = z.unsqueeze(1).expand(-1, n, -1)
        shared = torch.cat([a, zz], dim=-1).reshape(1, B * n, -1)              # re-fed at every layer
        x0 = shared if cond is None else torch.cat([cond.unsqueeze(1).expand(-1, n, -1).reshape(1, B * n, -1),
                                                    shared], dim=-1)
        x = torch.matmul(x0, self.weights[0]) + self.biases[0]                 # (E, B·n, h0)
        for layer in range(len(self.hidden)):
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:]) * self.norm_weights[layer] + self.norm_biases[layer]
            x = F.relu(x)
            w, b = self.weights[layer + 1], self.biases[layer + 1]
            if layer == len(self.hidden) - 1:                                       # output layer: Q from h_L
                x = torch.baddbmm(b, x, w)
            else:
                x = torch.baddbmm(b, x, w[:, :x.shape[-1]]) + torch.matmul(shared, w[:, x.shape[-1]:])
        return x.reshape(self.num_heads, B, n)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept the per-head layout of checkpoints written before the heads were stacked."""
        old = f"{prefix}0.out.weight"
        if old in state_dict:
            L = len(self.hidden)
            for layer in range(L + 1):
                src = [f"{prefix}{i}.layers.{layer}" if layer < L else f"{prefix}{i}.out" for i in range(self.num_heads)]
                state_dict[f"{prefix}weights.{layer}"] = torch.stack([state_dict.pop(f"{k}.weight").T for k in src])
                state_dict[f"{prefix}biases.{layer}"] = torch.stack([state_dict.pop(f"{k}.bias") for k in src]).unsqueeze(1)
                if layer < L and self.layer_norm:
                    for kind, dst in (("weight", "norm_weights"), ("bias", "norm_biases")):
                        state_dict[f"{prefix}{dst}.{layer}"] = torch.stack(
                            [state_dict.pop(f"{prefix}{i}.norms.{layer}.{kind}") for i in range(self.num_heads)]
                        ).unsqueeze(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LowDimEncoder(nn.Module):
    """State-mode encoder: standardised low-dim input (B, S [+ E]) -> Dense(latent) -> LayerNorm -> tanh (B, L),
    the state analogue of the image encoder's bottleneck (and of SERL/RLPD's LayerNorm state MLPs).

    film_dim > 0: FiLM by a conditioning vector c (B, film_dim) before the tanh, h·(1 + γ(c)) + β(c), with γ and β
    zero-initialised Dense layers so a fresh encoder computes exactly the unconditioned function (V-GPS/RT-1 FiLM)."""

    def __init__(self, in_dim: int, latent_dim: int, film_dim: int = 0):
        super().__init__()
        self.proj = nn.Linear(in_dim, latent_dim)
        nn.init.orthogonal_(self.proj.weight, gain=1.0)
        nn.init.zeros_(self.proj.bias)
        self.norm = nn.LayerNorm(latent_dim)
        self.out_dim = latent_dim
        self.film_dim = int(film_dim)
        if self.film_dim > 0:
            self.film_scale = nn.Linear(self.film_dim, latent_dim)
            self.film_shift = nn.Linear(self.film_dim, latent_dim)
            for lin in (self.film_scale, self.film_shift):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, lowdim: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(self.proj(lowdim))
        if self.film_dim > 0:
            if film is None:
                raise ValueError("this LowDimEncoder was built with FiLM (film_dim > 0) but got no conditioning "
                                 "vector; pass the task embedding (the policy's prepare_obs 'cond')")
            h = h * (1.0 + self.film_scale(film)) + self.film_shift(film)
        return torch.tanh(h)


def low_dim_input(cfg: ActorCriticConfig, o: dict[str, Any]) -> torch.Tensor | None:
    """The standardised low-dimensional input of a prepared observation: [state if use_state, environment
    state if use_environment_state] (B, S + E), or None when neither is fed."""
    parts = ([o["state"]] if cfg.use_state else []) + ([o["env_state"]] if cfg.use_environment_state else [])
    return torch.cat(parts, dim=-1) if parts else None


def make_encoder(cfg: ActorCriticConfig, low_dim: int, film_dim: int) -> nn.Module:
    if cfg.state_mode:
        return LowDimEncoder(low_dim + (cfg.cond_dim() if cfg.condition_low_dim_encoder else 0), cfg.latent_dim,
                             film_dim if cfg.low_dim_film else 0)
    return ImageEncoder(cfg.encoder_spec(), cfg.cameras, film_dim)


def encode(cfg: ActorCriticConfig, encoder: nn.Module, o: dict[str, Any], film: torch.Tensor | None) -> torch.Tensor:
    """Prepared obs -> the latent the MLPs read: state mode z = encoder(low-dim); image mode [encoder(images), low-dim]."""
    low = low_dim_input(cfg, o)
    if cfg.state_mode:
        if cfg.condition_low_dim_encoder and o["cond"] is not None:
            low = torch.cat([low, o["cond"]], dim=-1)
        return encoder(low, film) if getattr(encoder, "film_dim", 0) else encoder(low)
    z = encoder(o["images"], film)
    return z if low is None else torch.cat([z, low], dim=-1)


class Critic(nn.Module):
    """Image encoder + num_qs heads: obs images/cond/state + actions (B, N, A) -> Q (num_qs, B, N)."""

    def __init__(self, cfg: ActorCriticConfig, action_dim: int, low_dim: int):
        super().__init__()
        cond = cfg.cond_dim()
        self.cfg = cfg
        self.encoder = make_encoder(cfg, low_dim, cond if (cfg.film and cfg.conditioning == "language") else 0)
        z_dim = cfg.latent_dim + (0 if cfg.state_mode else low_dim)
        self.heads = CriticHeads(cfg.num_qs, z_dim, cond, action_dim, cfg.critic_hidden_dims,
                                 cfg.critic_final_init_scale, cfg.critic_layer_norm)

    def latent(self, o: dict[str, Any], film: torch.Tensor | None) -> torch.Tensor:
        """Prepared obs -> (B, Z) critic latent."""
        return encode(self.cfg, self.encoder, o, film)

    def heads_q(self, z: torch.Tensor, cond: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        return self.heads(z, cond, actions)


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
        config.validate()
        a_dim = normalizer.action_dim
        if config.use_environment_state and normalizer.env_state_dim == 0:
            raise ValueError("use_environment_state is set but the normaliser has no environment-state statistics: "
                             "fit it with env_states (the learner does when the store has "
                             f"{ENV_STATE_KEY!r})")
        low_dim = (normalizer.state_dim if config.use_state else 0) + \
            (normalizer.env_state_dim if config.use_environment_state else 0)
        self.action_dim = a_dim
        cond = config.cond_dim()
        film_dim = cond if (config.film and config.conditioning == "language") else 0
        self.actor_encoder = make_encoder(config, low_dim, film_dim)
        actor_in = config.latent_dim + cond + (0 if config.state_mode else low_dim)
        self.actor_trunk = _mlp([actor_in, *config.actor_hidden_dims])
        last = config.actor_hidden_dims[-1] if config.actor_hidden_dims else actor_in
        self.actor_mean = nn.Linear(last, a_dim)
        self.actor_log_std = nn.Linear(last, a_dim)
        for lin in (self.actor_mean, self.actor_log_std):
            nn.init.orthogonal_(lin.weight, gain=1e-2)
            nn.init.zeros_(lin.bias)
        self.critic = Critic(config, a_dim, low_dim)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.log_alpha_prime = nn.Parameter(torch.tensor(math.log(config.init_alpha_prime)))
        # One-hot: the identity; language: filled by the learner from the text encoder (saved with the weights).
        emb = torch.eye(len(config.tasks)) if config.conditioning == "onehot" else torch.zeros(len(config.tasks), cond)
        self.register_buffer("task_embeddings", emb if cond > 0 else torch.zeros(0, 0))
        passthrough = torch.zeros(a_dim, dtype=torch.bool)
        passthrough[list(normalizer.passthrough_dims)] = True
        self.register_buffer("_passthrough", passthrough, persistent=False)
        fixed = sorted({int(d) for d in config.fixed_action_dims})
        if any(d < 0 or d >= a_dim or (d == GRIPPER_INDEX and a_dim > GRIPPER_INDEX and bool(passthrough[d]))
               for d in fixed):
            raise ValueError(f"fixed_action_dims {fixed}: each must be an arm dimension in [0, {a_dim}), not the gripper")
        self._fixed_dims = fixed
        # Normalised dims the policy samples (tanh-Gaussian), without the fixed ones (and without a discrete gripper).
        self._free_dims = [d for d in range(a_dim) if d not in fixed]
        self._arm_dims = [d for d in self._free_dims if d != GRIPPER_INDEX]

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
    @property
    def free_action_dim(self) -> int:
        """Action dims the policy actually chooses (entropy targets and CQL's uniform density count these)."""
        return self.action_dim - len(self._fixed_dims)

    def fix_actions(self, a: torch.Tensor) -> torch.Tensor:
        """(..., A) normalised -> the same with `fixed_action_dims` at the normalised value of physical 0."""
        if not self._fixed_dims:
            return a
        a = a.clone()
        a[..., self._fixed_dims] = self._norm_action_offset[self._fixed_dims].to(a.dtype).clamp(-1.0, 1.0)
        return a

    def to_policy_action(self, action: torch.Tensor) -> torch.Tensor:
        """(..., A) physical -> (..., A) in [−1, 1]: normaliser affine (clipped to [q01, q99]); gripper 2g − 1;
        fixed dims at physical 0 (the critic sees data actions in the policy's own action space)."""
        a = action.float() * self._norm_action_scale + self._norm_action_offset
        a = torch.where(self._passthrough, 2.0 * a - 1.0, a)
        return self.fix_actions(a.clamp(-1.0, 1.0))

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
    def observation_keys(self) -> list[str]:
        return super().observation_keys() + ([ENV_STATE_KEY] if self.config.use_environment_state else [])

    def prepare_obs(self, batch: dict[str, torch.Tensor], prefix: str = "") -> dict[str, Any]:
        """Batch (B, ...) -> {"images": {cam: (B, 3, P, P)}, "cond": (B, D) | None, "state": (B, S),
        "env_state": (B, E) | None}. Augments (crop + jitter) in train mode; `prefix="next."` reads the next
        observation."""
        images = {}
        for cam in self.config.cameras:
            x = self.actor_encoder.preprocess(batch[prefix + image_key(cam)])
            images[cam] = augment(x, self.config.crop_pad_px, self.config.color_jitter) if self.training else x
        state = (batch[prefix + STATE_KEY].float() - self._norm_state_mean) / self._norm_state_std
        env_state = None
        if self.config.use_environment_state:
            env_state = (batch[prefix + ENV_STATE_KEY].float() - self._norm_env_state_mean) / self._norm_env_state_std
        if self.training and self.config.low_dim_noise_std > 0:
            state = state + self.config.low_dim_noise_std * torch.randn_like(state)
            if env_state is not None:
                env_state = env_state + self.config.low_dim_noise_std * torch.randn_like(env_state)
        cond = None
        if self.task_embeddings.numel() > 0:
            idx = batch.get("task_index")
            if idx is None:
                idx = torch.full((state.shape[0],), self.task_index_of(None), dtype=torch.long, device=state.device)
            cond = self.task_embeddings[idx]
        return {"images": images, "cond": cond, "state": state, "env_state": env_state}

    def actor_dist(self, o: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared obs -> (mean, log_std), (B, A) each, pre-tanh."""
        z = encode(self.config, self.actor_encoder, o, o["cond"] if self.actor_encoder_film else None)
        h = self.actor_trunk(torch.cat([z] + ([o["cond"]] if o["cond"] is not None else []), dim=-1))
        raw = self.actor_log_std(h)
        log_std = (self.config.log_std_multiplier * raw + self.config.log_std_offset).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.actor_mean(h), log_std

    @property
    def actor_encoder_film(self) -> bool:
        return self.config.film and self.config.conditioning == "language"

    @property
    def discrete_gripper(self) -> bool:
        return self.config.discrete_gripper and self.action_dim > GRIPPER_INDEX and bool(self._passthrough[GRIPPER_INDEX])

    def sample_from(self, mean: torch.Tensor, log_std: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples: actions (B, n, A) normalised and log π (B, n). Arm dims: reparameterised tanh-Gaussian. With
        `discrete_gripper` the gripper is a Bernoulli decision ±1 with p(open) = σ(logit = mean_g), and log π adds
        log p(g); the critic then only ever sees ±1 grippers, as in the data."""
        a, logp_arm, gripper_logp = self._sample(mean, log_std, n)
        return a, logp_arm if gripper_logp is None else logp_arm + gripper_logp

    def log_prob(self, mean: torch.Tensor, log_std: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """log π(a|s) of given normalised actions (B, A) -> (B,): the tanh-Gaussian density of the arm dims at
        atanh(a) (a clipped inside (−1, 1), as data on the bound would give −inf), plus log p(g) of the discrete
        gripper's decision (open iff a_g > 0). Used by CQL's BC warm start of the actor (CQLConfig.bc_steps)."""
        arm = self._arm_dims if self.discrete_gripper else self._free_dims
        u = torch.atanh(a[:, arm].clamp(-1.0 + 1e-4, 1.0 - 1e-4))
        logp = tanh_gaussian_log_prob(u, mean[:, arm], log_std[:, arm])
        if self.discrete_gripper:
            logit = mean[:, GRIPPER_INDEX]
            logp = logp + torch.where(a[:, GRIPPER_INDEX] > 0, F.logsigmoid(logit), F.logsigmoid(-logit))
        return logp

    def _sample(self, mean: torch.Tensor, log_std: torch.Tensor, n: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> actions (B, n, A), log-prob of the tanh-Gaussian dims (B, n), log p(g) of the discrete gripper or None."""
        eps = torch.randn(mean.shape[0], n, mean.shape[1], device=mean.device, dtype=mean.dtype)
        u = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * eps
        if not self.discrete_gripper:
            free = self._free_dims
            return self.fix_actions(torch.tanh(u)), tanh_gaussian_log_prob(
                u[..., free], mean[:, free].unsqueeze(1), log_std[:, free].unsqueeze(1)), None
        arm = self._arm_dims
        logp = tanh_gaussian_log_prob(u[..., arm], mean[:, arm].unsqueeze(1), log_std[:, arm].unsqueeze(1))
        logit = mean[:, GRIPPER_INDEX].unsqueeze(1).expand(-1, n)
        is_open = torch.rand_like(logit) < torch.sigmoid(logit)
        a = torch.cat([torch.tanh(u[..., :GRIPPER_INDEX]), torch.where(is_open, 1.0, -1.0).to(u.dtype).unsqueeze(-1),
                       torch.tanh(u[..., GRIPPER_INDEX + 1:])], dim=-1)
        return self.fix_actions(a), logp, torch.where(is_open, F.logsigmoid(logit), F.logsigmoid(-logit))

    def actor_objective(self, o: dict[str, Any], mean: torch.Tensor, log_std: torch.Tensor, alpha: torch.Tensor,
                        z: torch.Tensor, reduce: str = "min") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The SAC actor loss per sample, E[α log π(ã|s) − Q(s, ã)], -> (loss (B,), log π estimate (B,), Q (B,)).

        Arm dims by one reparameterised sample. The discrete gripper by its exact expectation over g ∈ {−1, +1}
        (discrete SAC, Christodoulou 2019; HIL-SERL likewise learns the gripper as a discrete action with its own
        critic): Σ_g p_g·(α log p_g − Q(s, [ã_arm, g])), so the decision gets a gradient from the Q difference
        between closing and opening, never through a saturated tanh. `reduce` over critic heads: min (CQL) or
        mean (RLPD). z: the (detached) critic latent of o.
        """
        a, logp_arm, _ = self._sample(mean, log_std, 1)
        logp_arm = logp_arm[:, 0]
        red = (lambda q: q.min(0).values) if reduce == "min" else (lambda q: q.mean(0))
        if not self.discrete_gripper:
            q = red(self.critic_q(o, a, z=z))[:, 0]
            return alpha * logp_arm - q, logp_arm, q
        both = a.repeat(1, 2, 1)                                 # (B, 2, A): gripper closed, open
        both[:, 0, GRIPPER_INDEX], both[:, 1, GRIPPER_INDEX] = -1.0, 1.0
        q = red(self.critic_q(o, both, z=z))                     # (B, 2)
        logit = mean[:, GRIPPER_INDEX]
        logp_g = torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=-1)
        p_g = logp_g.exp()
        loss = alpha * logp_arm + (p_g * (alpha * logp_g - q)).sum(-1)
        return loss, logp_arm + (p_g * logp_g).sum(-1), (p_g * q).sum(-1)

    def critic_q(self, o: dict[str, Any], actions: torch.Tensor, target: bool = False,
                 z: torch.Tensor | None = None) -> torch.Tensor:
        """Q_i(s, a) for actions (B, N, A) normalised -> (num_qs, B, N). `z`: a precomputed critic latent."""
        critic = self.target_critic if target else self.critic
        if z is None:
            z = self.critic_latent(o, target)
        return critic.heads_q(z, o["cond"], actions)

    def critic_latent(self, o: dict[str, Any], target: bool = False) -> torch.Tensor:
        """Prepared obs -> (B, Z) latent of the critic (or its Polyak target) for critic_q(..., z=...)."""
        critic = self.target_critic if target else self.critic
        return critic.latent(o, o["cond"] if self.actor_encoder_film else None)

    # ---- the gripper as a decision ------------------------------------------------------------------
    def binarize_gripper(self, a: torch.Tensor) -> torch.Tensor:
        """(..., A) normalised actions with the gripper set to ±1 by its sign (open iff tanh(u_g) > 0)."""
        if a.shape[-1] <= GRIPPER_INDEX or not bool(self._passthrough[GRIPPER_INDEX]):
            return a
        a = a.clone()
        a[..., GRIPPER_INDEX] = torch.where(a[..., GRIPPER_INDEX] > 0, 1.0, -1.0)
        return a

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
        """Deterministic evaluation action tanh(mean) (§0), gripper decided (0 or 1) -> float32 (A,) physical."""
        mean, _ = self.actor_dist(self._eval_prepared(obs))
        a = self.fix_actions(self.binarize_gripper(torch.tanh(mean[0])))
        return self.to_physical(a).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def sample_actions(self, obs: dict[str, np.ndarray], k: int) -> np.ndarray:
        """k stochastic actions from π(·|obs), each gripper decided by its sample -> float32 (k, A) physical."""
        mean, log_std = self.actor_dist(self._eval_prepared(obs))
        actions, _ = self.sample_from(mean, log_std, k)   # a discrete gripper is ±1 already; else its sign decides
        return self.to_physical(self.binarize_gripper(actions[0])).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def q_values(self, obs: dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        """Q(obs, a_k) for physical actions (K, A) -> float32 (K,), the min over the heads (critic_reduction=min)."""
        o = self._eval_prepared(obs)
        a = self.to_policy_action(torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device))
        return self.critic_q(o, a.unsqueeze(0)).min(0).values[0].cpu().numpy().astype(np.float32)

    def bc_terms(self, mean: torch.Tensor, log_std: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample imitation losses of normalised data actions a (B, A) for the RL actor -> (bc (B,), sigma_nll (B,)).

        bc: the BC baseline's loss (compute_loss) in the RL policy's own terms: MSE(tanh(mean), a) over the arm dims
        plus, with `discrete_gripper`, the BCE of the Bernoulli logit mean_g that sample_from draws the gripper from.
        sigma_nll: the tanh-Gaussian NLL of a with the mean DETACHED, so it fits only σ to the data's spread around
        the imitated mean (an RL actor starts exploring at the demonstrator's own noise, not at its initial σ)."""
        arm = self._arm_dims if self.discrete_gripper else self._free_dims
        bc = ((torch.tanh(mean[:, arm]) - a[:, arm]) ** 2).mean(-1)
        if self.discrete_gripper:
            target = (a[:, GRIPPER_INDEX] > 0).to(mean.dtype)
            bc = bc + self.config.gripper_loss_weight * F.binary_cross_entropy_with_logits(
                mean[:, GRIPPER_INDEX], target, reduction="none")
        u = torch.atanh(a[:, arm].clamp(-1.0 + 1e-4, 1.0 - 1e-4))
        sigma_nll = -tanh_gaussian_log_prob(u, mean[:, arm].detach(), log_std[:, arm])
        return bc, sigma_nll

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Actor-only behaviour cloning on the RL encoder, as PTR's and SERL's BC baselines: a fixed-σ Gaussian on
        the arm dimensions, i.e. MSE(tanh(mean), a) (Asap7772/PTR pixel_bc_learner.py + NormalPolicy std 1.0;
        serl_launcher agents/continuous/bc.py), plus BCE on the gripper logit 2·u_g against the binary target
        (as bc_conv). The learned-σ tanh-Gaussian NLL this replaces inflated σ on the 0/1 gripper instead of
        moving the mean (learning review F1: 0/20 → 8–10/20 on the same data and budget)."""
        o = self.prepare_obs(batch)
        mean, _ = self.actor_dist(o)
        a = self.to_policy_action(batch[ACTION_KEY])
        arm = [d for d in range(a.shape[-1]) if not bool(self._passthrough[d]) and d not in self._fixed_dims]
        mse = F.mse_loss(torch.tanh(mean[:, arm]), a[:, arm])
        loss, info = mse, {"bc_mse": float(mse.detach())}
        if a.shape[-1] > GRIPPER_INDEX and bool(self._passthrough[GRIPPER_INDEX]):
            target = (a[:, GRIPPER_INDEX] > 0).float()
            logit = 2.0 * mean[:, GRIPPER_INDEX]
            bce = F.binary_cross_entropy_with_logits(logit, target)
            loss = loss + self.config.gripper_loss_weight * bce
            info.update(bc_gripper_bce=float(bce.detach()),
                        bc_gripper_acc=float(((logit > 0).float() == target).float().mean()))
        info["loss"] = float(loss.detach())
        return loss, info
