"""In-process policy evaluation in the MuJoCo sim (no ROS): success rate of an actor on a task from seeded resets.

    actor (checkpoint dir ─► load_policy | live Policy | scripted expert | any `Actor`)
      │ reset(task, seed)
      ▼
    for seed in seeds:  sim.set_task(task); sim.reset(seed)
        loop ≤ max_steps:  obs = {observation.images.<cam>: sim.render(cam), observation.state: sim.state(),
                                  [observation.environment_state: sim.environment_state() when the actor reads it]}
                           a = actor.act(obs, sim) ─► sim.apply_ee_delta(a) (returns the executed action)
                           stop early once the task's ground-truth success function holds (success "at any step")
      ─► EpisodeResult (success, steps, final object-to-goal distance) ─► EvalResult (success rate)

`rollout(..., record=True)` also returns the episode as store columns (the same keys and timestamp recipe as
robot_stack.sim.generate.run_job), so online RL can append policy episodes to the trajectory store the learner
tails (benchmarks/bench_learning.py part b).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robot_stack.policies.gripper import GripperHold
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, capture_ns_key, image_key, receive_ns_key


class Actor(Protocol):
    """What the evaluation loop drives: one episode = reset(task, seed, language) then act(obs, sim) per step."""

    def reset(self, task: str, seed: int, language: str) -> None: ...

    def act(self, obs: dict[str, np.ndarray], sim: Any) -> np.ndarray: ...


class PolicyActor:
    """A registered Policy (physical ee_delta actions). Deterministic `select_action` for evaluation, or one
    `sample_actions` draw per step (`stochastic=True`: online exploration, as Cal-QL collects data); either way the
    gripper decision is held for `gripper_hold_steps` ticks (robot_stack.policies.gripper: no flickering grasp).

    Multi-task policies (a `tasks` list in their config) are conditioned on the episode's task language."""

    def __init__(self, policy: Any, stochastic: bool = False, gripper_hold_steps: int = 5):
        self.policy = policy
        self.stochastic = stochastic
        self.gripper = GripperHold(gripper_hold_steps)

    @property
    def reads_environment_state(self) -> bool:
        return ENV_STATE_KEY in self.policy.observation_keys()

    def reset(self, task: str, seed: int, language: str) -> None:
        cfg = self.policy.config
        tasks = tuple(getattr(cfg, "tasks", ()) or ())
        if tasks and hasattr(cfg, "deploy_task"):
            if language not in tasks:
                raise KeyError(f"task {task!r} ({language!r}) is not one this policy was trained on: {list(tasks)}")
            cfg.deploy_task = language
        self.policy.reset()
        self.gripper.reset()

    def act(self, obs: dict[str, np.ndarray], sim: Any) -> np.ndarray:
        # The held gripper in both modes: a deterministic decision flickers too where the policy's gripper logit
        # sits near 0 at the grasp (RLPD Tier 1c, seed 1: 18/30 unheld -> 27/30 held, learning_findings.md).
        if self.stochastic:
            return self.gripper.apply(self.policy.sample_actions(obs, 1)[0])
        return self.gripper.apply(self.policy.select_action(obs))


class ExpertActor:
    """The privileged scripted expert as an actor (a reference upper bound; needs the sim, not the obs)."""

    def __init__(self, noise_std: float = 0.0):
        self.noise_std = noise_std
        self._expert = None

    def reset(self, task: str, seed: int, language: str = "") -> None:
        from robot_stack.sim.expert import ScriptedExpert

        self._expert = ScriptedExpert(task, noise_std=self.noise_std, seed=seed)

    def act(self, obs: dict[str, np.ndarray], sim: Any) -> np.ndarray:
        return self._expert.act(sim)


def as_actor(x: Any, stochastic: bool = False) -> Actor:
    """A checkpoint path (v#### dir or root with `latest`), a Policy, or an Actor -> Actor."""
    if isinstance(x, (str, Path)):
        from robot_stack.policies.checkpoint import load_policy

        policy, _ = load_policy(Path(x))
        return PolicyActor(policy, stochastic)
    if hasattr(x, "select_action"):
        return PolicyActor(x, stochastic)
    if hasattr(x, "act") and hasattr(x, "reset"):
        return x
    raise TypeError(f"cannot evaluate {type(x).__name__}: pass a checkpoint path, a Policy or an Actor")


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    goal_distance_m: float   # final xy distance of the task's object to its goal point (NaN for push tasks)


@dataclass
class EvalResult:
    task: str
    episodes: list[EpisodeResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.episodes)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / self.n if self.n else float("nan")

    @property
    def mean_goal_distance_m(self) -> float:
        d = [e.goal_distance_m for e in self.episodes if np.isfinite(e.goal_distance_m)]
        return float(np.mean(d)) if d else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"task": self.task, "episodes": self.n, "successes": self.successes,
                "success_rate": self.success_rate, "mean_goal_distance_m": self.mean_goal_distance_m,
                "mean_steps": float(np.mean([e.steps for e in self.episodes])) if self.n else float("nan"),
                "wall_s": self.wall_s}


def observe(sim: Any, cameras: Sequence[str], environment_state: bool = False) -> dict[str, np.ndarray]:
    """The flat observation dict a recorder would store for this step (DESIGN.md §3 "Observations")."""
    obs = {image_key(c): sim.render(c) for c in cameras}
    obs[STATE_KEY] = sim.state()
    if environment_state:
        obs[ENV_STATE_KEY] = sim.environment_state()
    return obs


def goal_distance_m(sim: Any) -> float:
    """xy distance (m) of the task's object to where the task wants it (pick-and-place only; NaN otherwise)."""
    if hasattr(sim, "goal_distance_m"):
        return float(sim.goal_distance_m())
    task = sim.task_spec
    if task.kind != "pick_place":
        return float("nan")
    poses = sim.kitchen_poses()
    return float(np.linalg.norm(np.asarray(poses[task.obj])[:2] - task.place_xy(poses)))


def rollout(sim: Any, actor: Actor, task: str, seed: int, max_steps: int | None = None,
            record: bool = False, stop_on_success: bool = True, environment_state: bool | None = None
            ) -> tuple[EpisodeResult, dict[str, np.ndarray] | None]:
    """One episode from `sim.reset(seed)`; with `record`, also the store columns (T, ...) of every schema key.

    environment_state: observe (and record) observation.environment_state; None = when the actor reads it."""
    sim.set_task(task)
    sim.reset(seed=seed)
    actor.reset(task, seed, sim.language)
    if environment_state is None:
        environment_state = bool(getattr(actor, "reads_environment_state", False))
    cameras = tuple(sim.config.cameras)
    limit = int(max_steps or sim.max_episode_steps)
    states, env_states, actions, images = [], [], [], {c: [] for c in cameras}
    success = False
    steps = 0
    while steps < limit:
        obs = observe(sim, cameras, environment_state)
        action = np.asarray(actor.act(obs, sim), dtype=np.float32)
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            raise ValueError(f"actor returned {action!r}: expected a finite ee_delta action of shape (7,)")
        executed = sim.apply_ee_delta(action)
        steps += 1
        if record:
            for c in cameras:
                images[c].append(obs[image_key(c)])
            states.append(obs[STATE_KEY])
            if environment_state:
                env_states.append(obs[ENV_STATE_KEY])
            actions.append(np.asarray(executed, np.float32))
        success = bool(sim.is_success())
        if success and stop_on_success:
            break
    result = EpisodeResult(seed, success, steps, goal_distance_m(sim))
    if not record:
        return result, None
    return result, episode_columns(states, actions, images, float(sim.config.control_hz),
                                   env_states if environment_state else None)


def episode_columns(states: list, actions: list, images: dict[str, list], control_hz: float,
                    env_states: list | None = None) -> dict[str, np.ndarray]:
    """Per-step observations and executed actions -> store columns (T, ...), stamped one control period apart
    (the same keys and timestamp recipe as robot_stack.sim.generate.run_job)."""
    steps = len(actions)
    period_ns = int(round(1e9 / control_hz))
    stamps = time.time_ns() + period_ns * np.arange(steps, dtype=np.int64)
    cols: dict[str, np.ndarray] = {STATE_KEY: np.stack(states), ACTION_KEY: np.stack(actions)}
    if env_states is not None:
        cols[ENV_STATE_KEY] = np.stack(env_states)
    for c, frames in images.items():
        cols[image_key(c)] = np.stack(frames)
        cols[capture_ns_key(c)] = stamps
        cols[receive_ns_key(c)] = stamps
    for k in ("state", "action"):
        cols[capture_ns_key(k)] = stamps
    cols[receive_ns_key("state")] = stamps
    return cols


def evaluate(actor: Any, task: str, episodes: int = 10, seed: int = 1_000_000, sim: Any = None,
             sim_config: Any = None, max_steps: int | None = None, stochastic: bool = False) -> EvalResult:
    """Success rate of `actor` (checkpoint path, Policy or Actor) on `task` over resets seed, seed+1, ….

    Pass a TabletopSim (`sim`) to reuse its renderer, or a SimConfig; the sim's cameras must include the policy's.
    """
    from robot_stack.sim.env import SimConfig, TabletopSim

    act = as_actor(actor, stochastic)
    own = sim is None
    if own:
        cfg = sim_config or SimConfig(task=task)
        sim = TabletopSim(cfg)
    out = EvalResult(task)
    t0 = time.perf_counter()
    try:
        for i in range(episodes):
            out.episodes.append(rollout(sim, act, task, seed + i, max_steps)[0])
    finally:
        if own:
            sim.close()
    out.wall_s = time.perf_counter() - t0
    return out
