"""Dataset statistics that map physical actions/states to what a network sees (DESIGN.md §3 "Actions").

Actions: each dimension is mapped affinely from a range [low, high] to [-1, 1]. Two ways to get the range
(`mode`): "bounds" — fixed physical per-step limits of the rig (PTR rescales from the WidowX bounds ±0.05 m,
±0.25 rad, reference/algorithms.md §1 "Reward scheme"; the learners' default for `ee_delta`, see
`ee_delta_bounds`), or "quantile" — the data's q01/q99 (quantiles, not min/max, so a few outlier teleop jerks do
not squash the useful range; OpenVLA's scheme). Quantiles stretch a dimension the data never commands (roll and
pitch of a top-down task: IK by-products of a few mrad) to the full [-1, 1] and put the largest 2 % of real
motions into tanh saturation; fixed bounds do neither. The field names `action_q01`/`action_q99` hold the range
in both modes. The gripper is absolute in [0, 1] already and passes through unchanged. A constant dimension (q99 - q01 below `CONSTANT_RANGE_EPS`, e.g. a rotation
never used in the task) maps to 0 and back to its constant value, so nothing divides by zero.
State: (x - mean) / std, with std below the same epsilon treated as 1; the optional environment state
(`observation.environment_state`, privileged object poses) is standardised the same way with its own statistics.

Both directions are stored as per-dimension affine maps `y = x * scale + offset`, so numpy and torch
code apply the very same numbers (`tensors()` feeds the policy's buffers). Saved as plain JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_stack.types import GRIPPER_INDEX

NORMALIZER_FORMAT = 1
CONSTANT_RANGE_EPS = 1e-6
ACTION_NORMALIZATIONS = ("bounds", "quantile")


def ee_delta_bounds(translation_m: float, rotation_rad: float, action_dim: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) (A,) of an `ee_delta` action from per-step physical limits: ±translation on dx/dy/dz,
    ±rotation on droll/dpitch/dyaw; the gripper [0, 1] (it passes through the normaliser anyway)."""
    if translation_m <= 0 or rotation_rad <= 0:
        raise ValueError(f"action bounds must be positive, got {translation_m} m, {rotation_rad} rad")
    high = np.array([translation_m] * 3 + [rotation_rad] * 3 + [1.0] * (action_dim - 6), np.float64)
    low = -high
    low[6:] = 0.0
    return low, high


@dataclass
class Normalizer:
    """Per-dimension statistics: action q01/q99 (A,), state mean/std (S,)."""

    action_q01: np.ndarray
    action_q99: np.ndarray
    state_mean: np.ndarray
    state_std: np.ndarray
    passthrough_dims: tuple[int, ...] = field(default=(GRIPPER_INDEX,))
    env_state_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    env_state_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mode: str = "quantile"           # how action_q01/q99 were set: "quantile" (data) or "bounds" (physical limits)

    def __post_init__(self) -> None:
        self.action_q01 = np.asarray(self.action_q01, dtype=np.float64)
        self.action_q99 = np.asarray(self.action_q99, dtype=np.float64)
        self.state_mean = np.asarray(self.state_mean, dtype=np.float64)
        self.state_std = np.asarray(self.state_std, dtype=np.float64)
        self.env_state_mean = np.asarray(self.env_state_mean, dtype=np.float64).reshape(-1)
        self.env_state_std = np.asarray(self.env_state_std, dtype=np.float64).reshape(-1)
        self.passthrough_dims = tuple(int(d) for d in self.passthrough_dims)
        if self.mode not in ACTION_NORMALIZATIONS:
            raise ValueError(f"normalizer mode {self.mode!r}; known: {ACTION_NORMALIZATIONS}")
        if self.env_state_mean.shape != self.env_state_std.shape:
            raise ValueError(f"environment state mean {self.env_state_mean.shape} and std {self.env_state_std.shape} "
                             "must be equal (E,)")
        if self.action_q01.shape != self.action_q99.shape or self.action_q01.ndim != 1:
            raise ValueError(f"action q01 {self.action_q01.shape} and q99 {self.action_q99.shape} must be equal (A,)")
        if self.state_mean.shape != self.state_std.shape or self.state_mean.ndim != 1:
            raise ValueError(f"state mean {self.state_mean.shape} and std {self.state_std.shape} must be equal (S,)")
        for name in ("action_q01", "action_q99", "state_mean", "state_std", "env_state_mean", "env_state_std"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"normalizer {name} has non-finite values; recompute the dataset statistics")
        if np.any(self.action_q99 < self.action_q01):
            raise ValueError("normalizer action q99 < q01 in some dimension; recompute the dataset statistics")
        if any(not 0 <= d < self.action_dim for d in self.passthrough_dims):
            raise ValueError(f"passthrough dims {self.passthrough_dims} outside action dim {self.action_dim}")

    @property
    def action_dim(self) -> int:
        return int(self.action_q01.shape[0])

    @property
    def state_dim(self) -> int:
        return int(self.state_mean.shape[0])

    @property
    def env_state_dim(self) -> int:
        return int(self.env_state_mean.shape[0])

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, actions: np.ndarray, states: np.ndarray, passthrough_dims: Sequence[int] = (GRIPPER_INDEX,),
            env_states: np.ndarray | None = None,
            action_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Normalizer:
        """Statistics of actions (N, A), states (N, S) and optionally environment states (N, E), physical units.

        `action_bounds` (low, high) (A,) fixes the action range (mode "bounds"); None fits q01/q99 ("quantile").
        """
        actions = np.asarray(actions, dtype=np.float64)
        states = np.asarray(states, dtype=np.float64)
        if actions.ndim != 2 or states.ndim != 2 or len(actions) == 0 or len(actions) != len(states):
            raise ValueError(f"fit needs actions (N, A) and states (N, S) with N > 0; got {actions.shape}, {states.shape}")
        env = {}
        if env_states is not None:
            e = np.asarray(env_states, dtype=np.float64)
            if e.ndim != 2 or len(e) != len(actions):
                raise ValueError(f"fit needs environment states (N, E) with N = {len(actions)}; got {e.shape}")
            env = {"env_state_mean": e.mean(axis=0), "env_state_std": e.std(axis=0)}
        if action_bounds is None:
            low, high, mode = np.quantile(actions, 0.01, axis=0), np.quantile(actions, 0.99, axis=0), "quantile"
        else:
            low, high = (np.asarray(b, dtype=np.float64).reshape(-1) for b in action_bounds)
            if low.shape != (actions.shape[1],) or high.shape != low.shape:
                raise ValueError(f"action bounds {low.shape}/{high.shape} do not match the action dim {actions.shape[1]}")
            mode = "bounds"
        return cls(action_q01=low, action_q99=high, state_mean=states.mean(axis=0), state_std=states.std(axis=0),
                   passthrough_dims=tuple(passthrough_dims), mode=mode, **env)

    def clipped_fraction(self, actions: np.ndarray) -> np.ndarray:
        """(A,) fraction of the actions (N, A) outside [low, high] per dimension (clipped by the policy's tanh)."""
        a = np.asarray(actions, dtype=np.float64)
        out = ((a < self.action_q01 - 1e-9) | (a > self.action_q99 + 1e-9)).mean(axis=0)
        out[list(self.passthrough_dims)] = 0.0
        return out

    # ---- affine maps -----------------------------------------------------------------------------
    def _action_valid(self) -> np.ndarray:
        valid = (self.action_q99 - self.action_q01) >= CONSTANT_RANGE_EPS
        valid[list(self.passthrough_dims)] = False
        return valid

    def action_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset), (A,) each, with normalised = physical * scale + offset."""
        rng = self.action_q99 - self.action_q01
        valid = self._action_valid()
        scale = np.where(valid, 2.0 / np.where(valid, rng, 1.0), 0.0)
        offset = np.where(valid, -1.0 - self.action_q01 * scale, 0.0)
        passthrough = list(self.passthrough_dims)
        scale[passthrough], offset[passthrough] = 1.0, 0.0
        return scale, offset

    def action_inverse_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset), (A,) each, with physical = normalised * scale + offset (constant dims -> q01)."""
        rng = self.action_q99 - self.action_q01
        valid = self._action_valid()
        scale = np.where(valid, rng / 2.0, 0.0)
        offset = np.where(valid, self.action_q01 + rng / 2.0, self.action_q01)
        passthrough = list(self.passthrough_dims)
        scale[passthrough], offset[passthrough] = 1.0, 0.0
        return scale, offset

    def safe_state_std(self) -> np.ndarray:
        return np.where(self.state_std >= CONSTANT_RANGE_EPS, self.state_std, 1.0)

    def safe_env_state_std(self) -> np.ndarray:
        return np.where(self.env_state_std >= CONSTANT_RANGE_EPS, self.env_state_std, 1.0)

    def tensors(self) -> dict[str, np.ndarray]:
        """float32 arrays the policy registers as buffers: action_scale/offset, action_inv_scale/offset,
        state_mean, state_std (already safe), env_state_mean/std, each (A,), (S,) or (E,) (E may be 0)."""
        a_s, a_o = self.action_affine()
        i_s, i_o = self.action_inverse_affine()
        return {k: v.astype(np.float32) for k, v in {
            "action_scale": a_s, "action_offset": a_o, "action_inv_scale": i_s, "action_inv_offset": i_o,
            "state_mean": self.state_mean, "state_std": self.safe_state_std(),
            "env_state_mean": self.env_state_mean, "env_state_std": self.safe_env_state_std()}.items()}

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        """(..., A) physical -> (..., A) normalised (in [-1, 1] for in-quantile values)."""
        scale, offset = self.action_affine()
        return np.asarray(action, dtype=np.float64) * scale + offset

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        """(..., A) normalised -> (..., A) physical."""
        scale, offset = self.action_inverse_affine()
        return np.asarray(action, dtype=np.float64) * scale + offset

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """(..., S) physical -> (..., S) standardised."""
        return (np.asarray(state, dtype=np.float64) - self.state_mean) / self.safe_state_std()

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical (low, high), (A,) each, that normalised actions in [-1, 1] map to; gripper [0, 1]."""
        low, high = self.action_q01.copy(), self.action_q99.copy()
        passthrough = list(self.passthrough_dims)
        low[passthrough], high[passthrough] = 0.0, 1.0
        return low, high

    # ---- JSON ------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        out = {"format": NORMALIZER_FORMAT,
               "action": {"q01": self.action_q01.tolist(), "q99": self.action_q99.tolist(),
                          "passthrough_dims": list(self.passthrough_dims), "mode": self.mode},
               "state": {"mean": self.state_mean.tolist(), "std": self.state_std.tolist()}}
        if self.env_state_dim:
            out["environment_state"] = {"mean": self.env_state_mean.tolist(), "std": self.env_state_std.tolist()}
        return out

    @classmethod
    def from_json(cls, d: dict) -> Normalizer:
        if d.get("format") != NORMALIZER_FORMAT:
            raise ValueError(f"normalizer format {d.get('format')!r} is not {NORMALIZER_FORMAT}; "
                             "re-save the checkpoint with this version of robot_stack")
        env = d.get("environment_state", {"mean": [], "std": []})
        for v in (*d["action"]["q01"], *d["action"]["q99"], *d["state"]["mean"], *d["state"]["std"], *env["mean"],
                  *env["std"]):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"normalizer value {v!r} is not a finite number")
        return cls(action_q01=d["action"]["q01"], action_q99=d["action"]["q99"], state_mean=d["state"]["mean"],
                   state_std=d["state"]["std"], passthrough_dims=tuple(d["action"]["passthrough_dims"]),
                   env_state_mean=env["mean"], env_state_std=env["std"], mode=d["action"].get("mode", "quantile"))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Normalizer:
        return cls.from_json(json.loads(Path(path).read_text()))
