"""`diffusion`: a DDPM-trained, DDIM-sampled action-chunk policy (Chi et al. 2023, "Diffusion Policy"; recipe from
real-stanford/diffusion_policy and huggingface/lerobot's diffusion policy, re-written on this project's encoders).

    obs history o_{t-T_o+1..t}, each {images (H, W, 3) uint8 per camera, state (S,), [environment state (E,)]}
      ─► per frame: images ─► [train: crop + colour jitter] ─► ImageEncoder (resnet + SLE + bottleneck) ⊕ low-dim
                    state mode (`arch: none`): standardised [state, env state] ─► LowDimEncoder
         (the RL policies' encoder modules, composed as actor_critic composes them)
      ─► concat over T_o ─► obs_cond (B, T_o · Z)
    training:  chunk a_{t-T_o+1 .. t-T_o+T_p} (physical) ─► [-1, 1] (normaliser; gripper 2g − 1, a binary ±1)
               ─► ε-prediction loss of the 1-D conv UNet (unet.py) at a random DDPM step (scheduler.py)
    acting:    x_T ~ N(0, I) (K, T_p, A) ─► S DDIM steps with the EMA weights ─► x̂_0 ─► executed slice
               [T_o − 1, T_o − 1 + T_a) ─► physical; gripper open iff its coordinate > 0

Defaults are diffusion_policy's: T_o = 2, T_p = 16, T_a = 8, T = 100 training steps, squared-cosine schedule,
ε-prediction, clip x̂_0 to [-1, 1], EMA with power 0.75 warm-up; S = 10 DDIM steps (η = 0) instead of 100 DDPM
steps for CPU latency (η = 1, S = T samples as DDPM does, see scheduler.py).

Acting is stateful (the caller makes ONE call per control tick, then `reset()` at each episode start):
  * `select_action(obs)` -> (A,): pushes obs into the T_o history (an empty history is filled with copies of the
    first frame, as training pads episode starts); when the action queue is empty, samples one chunk and queues its
    T_a executed actions; pops one. The gripper is a binary decision; holding it across ticks (so a chunk boundary
    that disagrees for one step cannot make the fingers flicker) is the PolicyRunner's / PolicyActor's job, as for
    every policy (robot_stack.policies.gripper.GripperHold).
  * `sample_actions(obs, k)` -> (K, A): pushes obs the same way and returns the FIRST executed action of K
    independently sampled chunks (one UNet batch over K, the encoder run once). (K, A) and not (K, T_a, A) because
    the runner, PolicyActor and V-GPS's `q_values(obs, actions (K, A))` all take one action per sample; the whole
    chunks are `sample_chunks(obs_history, k)` (stateless, (K, T_a, A)), what PA-RL optimises and distils back
    through `compute_loss` / `denoising_loss` on (obs history, chunk) pairs.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.actor_critic import STATE_ARCH, LowDimEncoder, validate_inputs
from robot_stack.policies.base import POLICIES, Policy, PolicyConfig
from robot_stack.policies.diffusion.scheduler import NoiseSchedule
from robot_stack.policies.diffusion.unet import ConditionalUnet1d
from robot_stack.policies.encoders import EncoderSpec, ImageEncoder, augment
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, image_key


@dataclass
class DiffusionConfig(PolicyConfig):
    cameras: tuple[str, ...] = ("front", "wrist")
    # Observation encoder: the fields and meaning of ActorCriticConfig's (the same encoder modules).
    arch: str = "resnet18"                  # resnet18 | resnet34 | resnet_tiny (tests) | none (state mode)
    base_width: int = 64
    norm_groups: int = 4
    num_spatial_embeddings: int = 8
    latent_dim: int = 256
    image_size_px: int = 128
    crop_pad_px: int = 4
    color_jitter: bool = True
    use_state: bool = True                  # diffusion_policy feeds proprioception with the images
    use_environment_state: bool = False     # observation.environment_state (privileged object state in sim)
    low_dim_noise_std: float = 0.0          # Gaussian noise on the standardised low-dim input while training
    # Horizons (Chi et al. §3.1): observe T_o frames, predict T_p actions, execute T_a of them.
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    # Denoiser (diffusion_policy's ConditionalUnet1D at CPU widths; the paper's image recipe is (256, 512, 1024)).
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    unet_groups: int = 8
    step_embed_dim: int = 64
    # Noise schedule and sampler.
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    num_inference_steps: int = 10
    ddim_eta: float = 0.0                   # 0: deterministic DDIM; 1 with num_inference_steps = T: DDPM
    clip_sample: bool = True
    # EMA of the weights (diffusion_policy EMAModel: decay = 1 − (1 + step/inv_gamma)^−power, capped).
    use_ema: bool = True
    ema_power: float = 0.75
    ema_inv_gamma: float = 1.0
    ema_max_decay: float = 0.9999
    # Action dims the policy never moves (physical 0 in every action it produces; data actions too), as
    # actor_critic's: a task's reduced action space (roll/pitch on top-down pick-and-place).
    fixed_action_dims: tuple[int, ...] = ()
    lr: float = 1e-4                        # diffusion_policy AdamW 1e-4, weight decay 1e-6
    weight_decay: float = 1e-6

    @property
    def state_mode(self) -> bool:
        return self.arch == STATE_ARCH

    def encoder_spec(self) -> EncoderSpec:
        return EncoderSpec(self.arch, self.base_width, self.norm_groups, self.num_spatial_embeddings,
                           self.latent_dim, self.image_size_px)

    def validate(self) -> None:
        validate_inputs(self)
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            raise ValueError(f"n_obs_steps ({self.n_obs_steps}) and n_action_steps ({self.n_action_steps}) must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(f"horizon {self.horizon} < n_obs_steps - 1 + n_action_steps "
                             f"({self.n_obs_steps - 1 + self.n_action_steps}): the executed actions must lie inside "
                             "the predicted chunk; raise horizon or lower n_action_steps")


class DiffusionNet(nn.Module):
    """Everything with weights: observation encoder + denoiser (the EMA is a copy of this module)."""

    def __init__(self, cfg: DiffusionConfig, low_dim: int, action_dim: int):
        super().__init__()
        # Built from the modules, not actor_critic.make_encoder: that helper takes an ActorCriticConfig and grows
        # fields of its own (task conditioning), which a diffusion config should not have to mirror.
        self.encoder = LowDimEncoder(low_dim, cfg.latent_dim) if cfg.state_mode else \
            ImageEncoder(cfg.encoder_spec(), cfg.cameras)
        per_frame = cfg.latent_dim + (0 if cfg.state_mode else low_dim)
        self.obs_cond_dim = cfg.n_obs_steps * per_frame
        self.unet = ConditionalUnet1d(action_dim, self.obs_cond_dim, tuple(cfg.down_dims), cfg.kernel_size,
                                      cfg.unet_groups, cfg.step_embed_dim)


@POLICIES.register("diffusion")
class DiffusionPolicy(Policy):
    name = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, normalizer: Normalizer):
        super().__init__(config, normalizer)
        config.validate()
        if config.use_environment_state and normalizer.env_state_dim == 0:
            raise ValueError("use_environment_state is set but the normaliser has no environment-state statistics: "
                             f"fit it with env_states (the BC learner does when the store has {ENV_STATE_KEY!r})")
        a_dim = normalizer.action_dim
        fixed = sorted({int(d) for d in config.fixed_action_dims})
        if any(d < 0 or d >= a_dim or d in normalizer.passthrough_dims for d in fixed):
            raise ValueError(f"fixed_action_dims {fixed}: each must be an arm dimension in [0, {a_dim}), not the gripper")
        self._fixed_dims = fixed
        low_dim = (normalizer.state_dim if config.use_state else 0) + \
            (normalizer.env_state_dim if config.use_environment_state else 0)
        self.action_dim = a_dim
        self.net = DiffusionNet(config, low_dim, a_dim)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))   # saved: a resumed EMA continues
        passthrough = torch.zeros(a_dim, dtype=torch.bool)
        passthrough[list(normalizer.passthrough_dims)] = True
        self.register_buffer("_passthrough", passthrough, persistent=False)
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.beta_schedule)
        self._obs_history: deque[dict[str, np.ndarray]] = deque(maxlen=config.n_obs_steps)
        self._action_queue: deque[np.ndarray] = deque()

    # ---- what the learner needs ---------------------------------------------------------------------
    def data_window(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(observation offsets, action offsets) relative to a sampled frame t: observations t−T_o+1..t, actions
        t−T_o+1..t−T_o+T_p (diffusion_policy's and LeRobot's alignment); robot_stack.learn.dataset pads both by
        repeating the episode's first/last frame."""
        c = self.config
        return tuple(range(1 - c.n_obs_steps, 1)), tuple(range(1 - c.n_obs_steps, 1 - c.n_obs_steps + c.horizon))

    def observation_keys(self) -> list[str]:
        return super().observation_keys() + ([ENV_STATE_KEY] if self.config.use_environment_state else [])

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """EMA update θ̄ ← d θ̄ + (1 − d) θ with d = min(1 − (1 + n/γ)^−p, max_decay) (diffusion_policy ema_model.py,
        n = updates so far); buffers are copied. Called by the BC learner after every optimiser step."""
        c = self.config
        decay = ema_decay(int(self.ema_step), c.ema_power, c.ema_inv_gamma, c.ema_max_decay) if c.use_ema else 0.0
        for p, ema in zip(self.net.parameters(), self.ema_net.parameters(), strict=True):
            ema.lerp_(p, 1.0 - decay)
        for b, ema_b in zip(self.net.buffers(), self.ema_net.buffers(), strict=True):
            ema_b.copy_(b)
        self.ema_step += 1

    def acting_net(self) -> DiffusionNet:
        return self.ema_net if self.config.use_ema else self.net

    # ---- units ------------------------------------------------------------------------------------
    def to_model_action(self, action: torch.Tensor) -> torch.Tensor:
        """(..., A) physical -> (..., A) in [−1, 1]: normaliser affine (clipped), gripper 2·[g > 0.5] − 1 (a binary
        decision), fixed dims at the normalised value of physical 0."""
        a = action.float() * self._norm_action_scale + self._norm_action_offset
        a = torch.where(self._passthrough, torch.where(action.float() > 0.5, 1.0, -1.0), a)
        if self._fixed_dims:
            a[..., self._fixed_dims] = self._norm_action_offset[self._fixed_dims]
        return a.clamp(-1.0, 1.0)

    def to_physical(self, a: torch.Tensor) -> torch.Tensor:
        """(..., A) in [−1, 1] -> (..., A) physical; the gripper a decision: 1 (open) iff its coordinate > 0."""
        out = a * self._norm_action_inv_scale + self._norm_action_inv_offset
        out = torch.where(self._passthrough, (a > 0).to(a.dtype), out)
        if self._fixed_dims:
            out[..., self._fixed_dims] = 0.0
        return out

    # ---- observations -----------------------------------------------------------------------------
    def obs_cond(self, net: DiffusionNet, batch: dict[str, torch.Tensor], train: bool) -> torch.Tensor:
        """Observation histories {key: (B, T_o, ...)} -> (B, T_o · Z) conditioning; augments when `train`."""
        cfg, t_o = self.config, self.config.n_obs_steps
        b = batch[STATE_KEY].shape[0]

        def frames(key: str) -> torch.Tensor:          # (B, T_o, ...) -> (B·T_o, ...)
            return batch[key].reshape(b * t_o, *batch[key].shape[2:])

        images = {}
        for cam in cfg.cameras:
            x = net.encoder.preprocess(frames(image_key(cam)))
            images[cam] = augment(x, cfg.crop_pad_px, cfg.color_jitter) if train else x
        state = (frames(STATE_KEY).float() - self._norm_state_mean) / self._norm_state_std
        env_state = None
        if cfg.use_environment_state:
            env_state = (frames(ENV_STATE_KEY).float() - self._norm_env_state_mean) / self._norm_env_state_std
        if train and cfg.low_dim_noise_std > 0:
            state = state + cfg.low_dim_noise_std * torch.randn_like(state)
            if env_state is not None:
                env_state = env_state + cfg.low_dim_noise_std * torch.randn_like(env_state)
        low = [x for x, used in ((state, cfg.use_state), (env_state, cfg.use_environment_state)) if used]
        low_dim = torch.cat(low, dim=-1) if low else None
        if cfg.state_mode:
            z = net.encoder(low_dim)
        else:
            z = net.encoder(images)
            z = z if low_dim is None else torch.cat([z, low_dim], dim=-1)
        return z.reshape(b, -1)

    def _with_history_axis(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Observation keys as (B, T_o, ...): single frames (B, ...) are repeated over T_o (an episode start)."""
        out = {}
        t_o = self.config.n_obs_steps
        for key in self.observation_keys():
            if key not in batch:
                raise KeyError(f"batch lacks {key!r}; the diffusion policy reads {self.observation_keys()}")
            x = batch[key]
            frame_ndim = 4 if key.startswith("observation.images.") else 2
            if x.ndim == frame_ndim:
                x = x.unsqueeze(1).expand(-1, t_o, *x.shape[1:])
            if x.ndim != frame_ndim + 1 or x.shape[1] != t_o:
                raise ValueError(f"{key}: shape {tuple(x.shape)}, expected (B, T_o={t_o}, ...) or (B, ...); sample "
                                 "windows with policy.data_window() (robot_stack.learn.dataset.FrameDataset.sample_window)")
            out[key] = x
        return out

    # ---- training ---------------------------------------------------------------------------------
    def denoising_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-sample DDPM ε-prediction loss (Ho et al. eq. 14) -> (B,). batch: observation histories (B, T_o, ...)
        (or single frames (B, ...)) and `action` chunks (B, T_p, A) in physical units."""
        action = batch[ACTION_KEY]
        if action.ndim != 3 or action.shape[1] != self.config.horizon or action.shape[2] != self.action_dim:
            raise ValueError(f"action: shape {tuple(action.shape)}, expected chunks (B, T_p={self.config.horizon}, "
                             f"A={self.action_dim}); sample windows with policy.data_window()")
        cond = self.obs_cond(self.net, self._with_history_axis(batch), train=self.training)
        x0 = self.to_model_action(action)
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.schedule.num_train_timesteps, (x0.shape[0],), device=x0.device)
        eps = self.net.unet(self.schedule.add_noise(x0, noise, t), t, cond)
        return F.mse_loss(eps, noise, reduction="none").mean(dim=(1, 2))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.denoising_loss(batch).mean()
        return loss, {"loss": float(loss.detach())}

    # ---- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_normalized(self, obs_history: dict[str, torch.Tensor], k: int,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
        """K full chunks x̂_0 (K, T_p, A) in [−1, 1] for ONE observation history {key: (1, T_o, ...)} (or (T_o, ...)).

        noise: x_T (K, T_p, A); None draws it from torch's RNG. With η = 0 the result is a deterministic function
        of (weights, history, noise), and row i equals a K = 1 call given noise[i:i+1]; with η > 0 the per-step
        noise comes from torch's RNG."""
        c = self.config
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        net = self.acting_net()
        hist = {key: v if v.ndim > (4 if key.startswith("observation.images.") else 2) else v.unsqueeze(0)
                for key, v in obs_history.items()}
        cond = self.obs_cond(net, self._with_history_axis(hist), train=False)
        if cond.shape[0] != 1:
            raise ValueError(f"sample_normalized takes one observation history, got a batch of {cond.shape[0]}")
        cond = cond.expand(k, -1)
        shape = (k, c.horizon, self.action_dim)
        x = torch.randn(shape, device=self.device) if noise is None else noise.to(self.device, torch.float32)
        if tuple(x.shape) != shape:
            raise ValueError(f"noise has shape {tuple(x.shape)}, expected {shape} (K, T_p, A)")
        for t in self.schedule.inference_timesteps(c.num_inference_steps):
            steps = torch.full((k,), t, dtype=torch.long, device=self.device)
            eps = net.unet(x, steps, cond)
            step_noise = torch.randn_like(x) if c.ddim_eta > 0 else None
            x = self.schedule.ddim_step(eps, t, x, c.num_inference_steps, c.ddim_eta, step_noise, c.clip_sample)
        return x

    @torch.no_grad()
    def sample_normalized_batch(self, obs_histories: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """K chunks for EACH of B observation histories {key: (B, T_o, ...)} (or (B, ...) single frames) ->
        (B, K, T_p, A) in [−1, 1]: one UNet batch of B·K per denoising step, the encoder run once per history.
        PA-RL (robot_stack/algos/parl.py) samples N candidates for every state of a training batch this way; on a
        CPU one B·K batch is several times cheaper than B calls of `sample_normalized`."""
        c = self.config
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        net = self.acting_net()
        cond = self.obs_cond(net, self._with_history_axis(obs_histories), train=False)
        b = cond.shape[0]
        cond = cond.repeat_interleave(k, dim=0)
        x = torch.randn((b * k, c.horizon, self.action_dim), device=self.device)
        for t in self.schedule.inference_timesteps(c.num_inference_steps):
            steps = torch.full((b * k,), t, dtype=torch.long, device=self.device)
            eps = net.unet(x, steps, cond)
            step_noise = torch.randn_like(x) if c.ddim_eta > 0 else None
            x = self.schedule.ddim_step(eps, t, x, c.num_inference_steps, c.ddim_eta, step_noise, c.clip_sample)
        return x.reshape(b, k, c.horizon, self.action_dim)

    def _history_tensors(self, obs_history: dict[str, Any]) -> dict[str, torch.Tensor]:
        # torch.tensor copies: observations decoded from ROS messages are read-only views of the bytes.
        return {key: torch.tensor(np.asarray(obs_history[key]), device=self.device) for key in self.observation_keys()}

    @torch.no_grad()
    def sample_chunks(self, obs_history: dict[str, np.ndarray], k: int, noise: torch.Tensor | None = None
                      ) -> np.ndarray:
        """Stateless: {key: (T_o, ...)} physical observation history -> float32 (K, T_a, A) physical executed chunks
        (gripper 0/1). noise: x_T (K, T_p, A) as in `sample_normalized`."""
        missing = [key for key in self.observation_keys() if key not in obs_history]
        if missing:
            raise KeyError(f"observation history lacks {missing}; the diffusion policy reads {self.observation_keys()}")
        x0 = self.sample_normalized(self._history_tensors(obs_history), k, noise)
        start = self.config.n_obs_steps - 1
        chunk = x0[:, start:start + self.config.n_action_steps]
        return self.to_physical(chunk).cpu().numpy().astype(np.float32)

    # ---- stateful acting (one call per control tick) ----------------------------------------------
    def reset(self) -> None:
        self._obs_history.clear()
        self._action_queue.clear()

    def _push(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Append obs to the history (an empty one is filled with copies of it); -> {key: (T_o, ...)}."""
        missing = [key for key in self.observation_keys() if key not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; the diffusion policy was trained on {self.observation_keys()}")
        frame = {key: np.array(obs[key], copy=True) for key in self.observation_keys()}
        while len(self._obs_history) < self.config.n_obs_steps - 1:
            self._obs_history.append(frame)
        self._obs_history.append(frame)
        return {key: np.stack([f[key] for f in self._obs_history]) for key in frame}

    @torch.no_grad()
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One tick: obs -> float32 (A,) physical action from the queued chunk (module docstring)."""
        history = self._push(obs)
        if not self._action_queue:
            self._action_queue.extend(self.sample_chunks(history, 1)[0])
        return self._action_queue.popleft()

    @torch.no_grad()
    def sample_actions(self, obs: dict[str, np.ndarray], k: int) -> np.ndarray:
        """One tick: obs -> float32 (K, A), the first executed action of K sampled chunks (module docstring)."""
        return self.sample_chunks(self._push(obs), k)[:, 0]

    def train(self, mode: bool = True) -> DiffusionPolicy:
        super().train(mode)
        self.ema_net.eval()   # the EMA copy never trains (no effect on GroupNorm/LayerNorm nets; explicit anyway)
        return self


def ema_decay(step: int, power: float = 0.75, inv_gamma: float = 1.0, max_decay: float = 0.9999) -> float:
    """The EMA decay after `step` updates: 0 at step 0 (the EMA starts as a copy), ~0.998 after 5000."""
    if step < 0:
        raise ValueError(f"EMA step must be >= 0, got {step}")
    return min(1.0 - (1.0 + step / inv_gamma) ** -power, max_decay)
