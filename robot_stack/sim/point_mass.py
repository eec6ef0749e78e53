"""A point-mass "reach and grasp" task small enough to learn in seconds: the learning tests' environment
(reference/algorithms.md §8 (a): a pure-numpy point mass with a sparse goal, milliseconds per step, no GL).

It speaks the same contract as the MuJoCo rig (7-D `ee_delta` actions with an absolute binary gripper,
`observation.state`, `observation.environment_state`, a task language, ground-truth success), so the real learner
service, store, policies and `robot_stack.learn.evaluate.rollout` run on it unchanged:

    reset(seed): point p ~ U(box), marker g ~ U(box), gripper open
    apply_ee_delta(a): p ← clip(p + clip(a[:3], ±max_step), box); gripper ← a[6]
        success (latched) when the gripper CLOSES (open → closed) within `grasp_radius_m` of the marker;
        closing elsewhere grasps nothing (re-open and try again) — so the gripper is a decision that must be
        taken at the right moment, as on the arm
    state = [p (3), gripper opening (1)];  environment_state = g − p (3)

`PointMassExpert` is the scripted demonstrator (noisy straight line, close on arrival; optional failures), and
`generate_point_mass` writes its episodes to a trajectory store the way `robot_stack.sim.generate` does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from robot_stack.types import (
    ACTION_KEY,
    EE_DELTA_DIM,
    ENV_STATE_KEY,
    GRIPPER_INDEX,
    STATE_KEY,
    FeatureSpec,
    capture_ns_key,
    receive_ns_key,
)

TASK = "reach_and_grasp"
LANGUAGE = "move to the marker and close the gripper on it"
STATE_DIM, ENV_STATE_DIM = 4, 3


@dataclass
class PointMassConfig:
    control_hz: float = 5.0
    cameras: tuple[str, ...] = ()
    max_step_m: float = 0.05                 # per-step translation limit (the rig's clamp)
    grasp_radius_m: float = 0.04
    box_min_m: tuple[float, float, float] = (-0.12, -0.12, 0.02)
    box_max_m: tuple[float, float, float] = (0.12, 0.12, 0.12)
    max_steps: int = 20


class PointMassSim:
    """See the module docstring. The attribute names follow TabletopSim where rollout() reads them."""

    def __init__(self, config: PointMassConfig | None = None, seed: int = 0):
        self.config = config or PointMassConfig()
        self.task_spec = SimpleNamespace(name=TASK, language=LANGUAGE, phase="forward", kind="reach")
        self._lo, self._hi = np.asarray(self.config.box_min_m), np.asarray(self.config.box_max_m)
        self.reset(seed)

    @property
    def language(self) -> str:
        return LANGUAGE

    @property
    def max_episode_steps(self) -> int:
        return self.config.max_steps

    def set_task(self, name: str) -> None:
        if name != TASK:
            raise KeyError(f"the point mass has one task, {TASK!r}; got {name!r}")

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.pos = rng.uniform(self._lo, self._hi)
        self.goal = rng.uniform(self._lo, self._hi)
        self.gripper = 1.0
        self.grasped = False

    def apply_ee_delta(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (EE_DELTA_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"ee_delta action must be {EE_DELTA_DIM} finite floats, got {a!r}")
        old = self.pos.copy()
        step = np.clip(a[:3], -self.config.max_step_m, self.config.max_step_m)
        self.pos = np.clip(self.pos + step, self._lo, self._hi)
        gripper = float(np.clip(a[GRIPPER_INDEX], 0.0, 1.0))
        closing = self.gripper > 0.5 and gripper <= 0.5
        if closing and self.goal_distance_m() < self.config.grasp_radius_m:
            self.grasped = True
        self.gripper = gripper
        executed = np.zeros(EE_DELTA_DIM, np.float32)
        executed[:3] = self.pos - old
        executed[GRIPPER_INDEX] = gripper
        return executed

    def is_success(self) -> bool:
        return self.grasped

    def goal_distance_m(self) -> float:
        return float(np.linalg.norm(self.goal - self.pos))

    def state(self) -> np.ndarray:
        return np.array([*self.pos, self.gripper], np.float32)

    def environment_state(self) -> np.ndarray:
        return (self.goal - self.pos).astype(np.float32)

    def close(self) -> None:
        pass


class PointMassExpert:
    """Scripted demonstrator (an evaluate.Actor): 4 cm steps straight at the marker with Gaussian noise, close
    when within 1.5 cm. `fail` = "early" closes at a wrong place and stops; "wander" never closes."""

    def __init__(self, noise_std_m: float = 0.01, fail: str | None = None, speed_m: float = 0.04):
        self.noise_std_m, self.fail, self.speed_m = noise_std_m, fail, speed_m
        self._rng = np.random.default_rng(0)

    def reset(self, task: str, seed: int, language: str = "") -> None:
        self._rng = np.random.default_rng(seed + 7919)
        self._close_at = int(self._rng.integers(1, 4))

    def act(self, obs: dict[str, np.ndarray], sim: PointMassSim) -> np.ndarray:
        a = np.zeros(EE_DELTA_DIM, np.float32)
        delta = sim.goal - sim.pos
        dist = float(np.linalg.norm(delta))
        step = delta if dist < self.speed_m else delta / dist * self.speed_m
        if self.fail == "wander":
            step = self._rng.normal(0.0, self.speed_m / 2, 3)
        a[:3] = step + self._rng.normal(0.0, self.noise_std_m, 3)
        a[GRIPPER_INDEX] = 1.0
        if self.fail == "early":
            self._close_at -= 1
            if self._close_at <= 0:
                a[GRIPPER_INDEX] = 0.0
        elif self.fail is None and dist < 0.02:
            a[GRIPPER_INDEX] = 0.0
        return a


def point_mass_schema():
    from robot_stack.store import StoreSchema

    feats = {STATE_KEY: FeatureSpec("float32", (STATE_DIM,)), ENV_STATE_KEY: FeatureSpec("float32", (ENV_STATE_DIM,)),
             ACTION_KEY: FeatureSpec("float32", (EE_DELTA_DIM,)),
             capture_ns_key("state"): FeatureSpec("int64", ()), receive_ns_key("state"): FeatureSpec("int64", ()),
             capture_ns_key("action"): FeatureSpec("int64", ())}
    return StoreSchema(robot="point_mass", control_hz=PointMassConfig.control_hz, action_space="ee_delta",
                       features=feats)


def generate_point_mass(store_path: str | Path, episodes: int, noise_std_m: float = 0.01, failure_share: float = 0.0,
                        seed: int = 0, source: str = "sim") -> tuple[int, int]:
    """Append `episodes` expert episodes (a seeded `failure_share` of them failing on purpose) -> (successes, steps)."""
    from robot_stack.learn.evaluate import rollout
    from robot_stack.store import EpisodeMeta, TrajectoryStore

    rng = np.random.default_rng(seed)
    sim = PointMassSim()
    store = TrajectoryStore.open_or_create(Path(store_path), point_mass_schema())
    ok = steps = 0
    try:
        for i in range(episodes):
            fail = (["early", "wander"][int(rng.integers(2))]) if rng.random() < failure_share else None
            ep_seed = seed * 100_003 + i
            res, cols = rollout(sim, PointMassExpert(noise_std_m, fail), TASK, ep_seed, record=True,
                                environment_state=True)
            cols = {k: v for k, v in cols.items() if k in store.schema.features}
            store.append_episode(cols, EpisodeMeta(task=LANGUAGE, source=source, phase="forward", success=res.success,
                                                   start_time_ns=time.time_ns(),
                                                   notes=json.dumps({"seed": ep_seed, "fail": fail})))
            ok += int(res.success)
            steps += res.steps
    finally:
        store.close()
    return ok, steps
