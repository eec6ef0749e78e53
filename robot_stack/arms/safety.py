"""Command checks every arm gets, whatever the driver: shape/NaN rejection, per-step clamp, workspace box.

Why here and not in the policy: a policy (or a person on a gamepad) can produce anything; the arm node
is the last place that sees every command before the hardware (DESIGN.md §1, SERL `clip_safety_box`,
LeRobot `max_relative_target`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_stack.types import ACTION_SPACES, GRIPPER_INDEX


class CommandRejected(ValueError):
    """A command that must not reach the arm; the message names what was wrong."""


@dataclass(frozen=True)
class SafetyConfig:
    workspace_min_m: tuple[float, float, float]
    workspace_max_m: tuple[float, float, float]
    max_delta_m: float
    max_delta_rad: float
    max_command_age_ms: float

    def __post_init__(self):
        lo, hi = np.asarray(self.workspace_min_m), np.asarray(self.workspace_max_m)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box must be 3 mins < 3 maxes, got {self.workspace_min_m} / {self.workspace_max_m}")
        if self.max_delta_m <= 0 or self.max_delta_rad <= 0 or self.max_command_age_ms <= 0:
            raise ValueError("max_delta_m, max_delta_rad and max_command_age_ms must be positive")

    @classmethod
    def from_mapping(cls, m) -> SafetyConfig:
        return cls(
            workspace_min_m=tuple(float(v) for v in m["workspace_min_m"]),
            workspace_max_m=tuple(float(v) for v in m["workspace_max_m"]),
            max_delta_m=float(m["max_delta_m"]),
            max_delta_rad=float(m["max_delta_rad"]),
            max_command_age_ms=float(m["max_command_age_ms"]),
        )


def validate_command(names: Sequence[str], values: Sequence[float], action_space: str) -> np.ndarray:
    """Return the command as float64 (D,) or raise CommandRejected (names, shape, non-finite, gripper range)."""
    expected = ACTION_SPACES[action_space]
    if tuple(names) != expected:
        raise CommandRejected(f"action names {list(names)} do not match the {action_space} space {list(expected)}")
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (len(expected),):
        raise CommandRejected(f"action has {a.size} values, the {action_space} space needs {len(expected)}")
    if not np.all(np.isfinite(a)):
        raise CommandRejected(f"action contains NaN/inf: {a.tolist()}")
    return a


def clamp_ee_delta(action: np.ndarray, ee_xyz_m: np.ndarray, cfg: SafetyConfig) -> np.ndarray:
    """Clamp an ee_delta action (7,) so one step moves at most max_delta and ends inside the workspace box.

    Translation is scaled as a vector (keeps the direction) rather than clipped per axis.
    """
    a = np.array(action, dtype=np.float64)
    d = a[:3]
    norm = float(np.linalg.norm(d))
    if norm > cfg.max_delta_m:
        d = d * (cfg.max_delta_m / norm)
    target = np.clip(ee_xyz_m + d, cfg.workspace_min_m, cfg.workspace_max_m)
    a[:3] = target - ee_xyz_m
    a[3:6] = np.clip(a[3:6], -cfg.max_delta_rad, cfg.max_delta_rad)
    a[GRIPPER_INDEX] = float(np.clip(a[GRIPPER_INDEX], 0.0, 1.0))
    return a
