"""Prior-data generator: scripted multi-task episodes from the sim, written to a trajectory store.

    parent: job list (task, seed, noise, truncation) ──► worker processes (each: its own TabletopSim, steps the
            expert, renders every camera) ──► episode arrays ──► parent = the store's single writer
            (TrajectoryStore.append_episode, tqdm progress) ──► committed episodes

Each episode is recorded the way the recorder records a rig: per step the observation *before* the action
(images per camera, observation.state and, with `environment_state=True`, the privileged object state
observation.environment_state read at the same instant, TabletopSim.environment_state), the executed action,
and capture/receive timestamps (sim time from the episode's wall-clock start; receive = capture, the sim has
no transport). EpisodeMeta: task = the language instruction, source "sim", phase forward/backward from the
task, success = ground truth at the end.
`cameras=()` records no images at all (nothing is rendered): fast state-only data. The environment state has
no timestamp columns of its own: it is read at the state's instant and shares timestamps.state.*.

A `failure_share` of episodes is made deliberately worse (PTR/Cal-QL want failures in prior data): half of
them with heavy translation noise, half truncated partway through the script. Their success is still measured,
never assumed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, capture_ns_key, image_key, receive_ns_key

log = logging.getLogger(__name__)

# Which rig config describes each sim arm's store schema (robot_stack/conf/rig/).
RIG_OF_ARM = {"widowx": "sim_widowx", "panda": "sim_franka"}
HEAVY_NOISE_EXTRA_M = 0.02  # failure episodes: this much extra noise std on every translation step
TRUNCATE_FRACTION = (0.3, 0.7)  # failure episodes: the script stops after this fraction of its usual length
TYPICAL_EPISODE_STEPS = 40


@dataclass(frozen=True)
class Job:
    index: int
    task: str
    seed: int
    noise_std_m: float
    truncate_after: int | None


def plan_jobs(tasks: list[str], episodes: int, noise_std_m: float, failure_share: float, seed: int) -> list[Job]:
    """Round-robin over tasks; a seeded `failure_share` of jobs get heavy noise or a truncated script."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not 0.0 <= failure_share <= 1.0:
        raise ValueError(f"failure_share must be in [0, 1], got {failure_share}")
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(episodes):
        noise, truncate = noise_std_m, None
        if rng.random() < failure_share:
            if rng.random() < 0.5:
                noise = noise_std_m + HEAVY_NOISE_EXTRA_M
            else:
                truncate = int(TYPICAL_EPISODE_STEPS * rng.uniform(*TRUNCATE_FRACTION))
        jobs.append(Job(i, tasks[i % len(tasks)], seed * 100_003 + i, noise, truncate))
    return jobs


def store_schema(arm: str, image_size_px: int, cameras: tuple[str, ...], environment_state: bool = False):
    """The schema a recorder on this arm's sim rig would create (so sim and ROS-recorded data mix).

    cameras may be empty (state-only store); environment_state adds ENV_STATE_KEY float32 (ENV_STATE_DIM,).
    """
    from robot_stack.conf import load_config
    from robot_stack.sim.env import ENV_STATE_DIM
    from robot_stack.store.recorder import schema_for_rig
    from robot_stack.types import FeatureSpec

    if arm not in RIG_OF_ARM:
        raise ValueError(f"unknown sim arm {arm!r}; known: {', '.join(RIG_OF_ARM)}")
    overrides = [f"rig={RIG_OF_ARM[arm]}"]
    cfg = load_config(overrides)
    from omegaconf import OmegaConf

    rig = OmegaConf.to_container(cfg.rig, resolve=True)
    rig["cameras"] = {c: {**rig["cameras"].get(c, {"fps_hz": 10.0}), "height": image_size_px, "width": image_size_px}
                      for c in cameras}
    schema = schema_for_rig(OmegaConf.create(rig))
    if environment_state:
        schema.features[ENV_STATE_KEY] = FeatureSpec("float32", (ENV_STATE_DIM,))
    return schema


# ------------------------------------------------------------------------------------------- worker side
_WORKER: dict = {}


def _worker_init(arm: str, image_size_px: int, cameras: tuple[str, ...], control_hz: float, sim_kwargs: dict) -> None:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_stack.sim.env import SimConfig, TabletopSim

    _WORKER["sim"] = TabletopSim(SimConfig(arm=arm, image_size_px=image_size_px, cameras=cameras,
                                           control_hz=control_hz, **sim_kwargs))


def run_job(sim, job: Job, cameras: tuple[str, ...], environment_state: bool = False
            ) -> tuple[dict[str, np.ndarray], dict]:
    """Simulate one episode; returns (columns (T, ...) per store key, EpisodeMeta fields).

    environment_state: also record ENV_STATE_KEY (sim.environment_state(), read right after the state).
    """
    from robot_stack.sim.expert import ScriptedExpert

    sim.set_task(job.task)
    sim.reset(seed=job.seed)
    expert = ScriptedExpert(job.task, noise_std=job.noise_std_m, seed=job.seed, truncate_after=job.truncate_after)
    period_ns = int(round(1e9 / sim.config.control_hz))
    start_ns = time.time_ns()
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    states, env_states, actions = [], [], []
    while not expert.done and len(actions) < sim.max_episode_steps:
        for c in cameras:
            images[c].append(sim.render(c))
        states.append(sim.state())
        if environment_state:
            env_states.append(sim.environment_state())
        actions.append(sim.apply_ee_delta(expert.act(sim)))
    if not actions:
        raise RuntimeError(f"job {job}: the expert finished before acting")
    n = len(actions)
    stamps = start_ns + period_ns * np.arange(n, dtype=np.int64)
    cols: dict[str, np.ndarray] = {STATE_KEY: np.stack(states), ACTION_KEY: np.stack(actions).astype(np.float32)}
    if environment_state:
        cols[ENV_STATE_KEY] = np.stack(env_states)
    for c in cameras:
        cols[image_key(c)] = np.stack(images[c])
        cols[capture_ns_key(c)] = stamps
        cols[receive_ns_key(c)] = stamps
    cols[capture_ns_key("state")] = stamps
    cols[receive_ns_key("state")] = stamps
    cols[capture_ns_key("action")] = stamps
    task = sim.task_spec
    meta = {
        "task": task.language, "source": "sim", "phase": task.phase, "success": bool(sim.is_success()),
        "start_time_ns": int(start_ns), "end_time_ns": int(stamps[-1] + period_ns),
        "notes": json.dumps({"sim_task": job.task, "arm": sim.arm_spec.name, "seed": job.seed,
                             "noise_std_m": job.noise_std_m, "truncate_after": job.truncate_after}),
    }
    return cols, meta


def _worker_run(job_cams_env) -> tuple[int, dict, dict]:
    job, cameras, environment_state = job_cams_env
    cols, meta = run_job(_WORKER["sim"], job, cameras, environment_state)
    return job.index, cols, meta


# ------------------------------------------------------------------------------------------- parent side
@dataclass
class GenerateReport:
    episodes: int
    successes: int
    steps: int
    wall_s: float
    per_task: dict[str, list[int]]  # task -> [successes, episodes]
    store: str


def generate(store_path, arm: str = "widowx", tasks: list[str] | None = None, episodes: int = 10,
             noise_std_m: float = 0.01, failure_share: float = 0.2, workers: int = 2, image_size_px: int = 128,
             cameras: tuple[str, ...] = ("front", "wrist"), seed: int = 0, control_hz: float = 5.0,
             sim_kwargs: dict | None = None, progress: bool = True,
             environment_state: bool = False) -> GenerateReport:
    """Write `episodes` scripted episodes (round-robin over `tasks`) to the store at `store_path`.

    tasks: sim task names; default = every task except the held-out ones (robot_stack.sim.tasks.HELD_OUT_TASKS).
    workers: simulation processes (>= 1); the calling process is the only store writer.
    cameras: () = no images, nothing rendered (state-only data).
    environment_state: also record ENV_STATE_KEY (TabletopSim.environment_state, 16 floats) every step.
    """
    from tqdm import tqdm

    from robot_stack.sim.tasks import get_task, prior_tasks
    from robot_stack.store import EpisodeMeta, TrajectoryStore

    tasks = list(tasks) if tasks else prior_tasks()
    for t in tasks:
        get_task(t)  # unknown names fail before any process starts
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cameras = tuple(cameras)
    jobs = plan_jobs(tasks, episodes, noise_std_m, failure_share, seed)
    schema = store_schema(arm, image_size_px, cameras, environment_state)
    store = TrajectoryStore.open_or_create(Path(store_path), schema)
    per_task: dict[str, list[int]] = {t: [0, 0] for t in tasks}
    n_ok = n_steps = 0
    t0 = time.perf_counter()
    init_args = (arm, image_size_px, cameras, control_hz, dict(sim_kwargs or {}))
    bar = tqdm(total=len(jobs), desc=f"sim generate ({arm})", unit="ep", disable=not progress)
    try:
        if workers == 1:
            _worker_init(*init_args)
            results = (_worker_run((j, cameras, environment_state)) for j in jobs)
            pool = None
        else:
            # spawn, not fork: each worker opens its own EGL context, which must not be inherited.
            pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=init_args)
            results = pool.imap_unordered(_worker_run, [(j, cameras, environment_state) for j in jobs],
                                          chunksize=1)
        for index, cols, meta in results:
            store.append_episode(cols, EpisodeMeta(**meta))
            name = jobs[index].task
            per_task[name][0] += int(meta["success"])
            per_task[name][1] += 1
            n_ok += int(meta["success"])
            n_steps += len(cols[ACTION_KEY])
            bar.update(1)
            bar.set_postfix(success=f"{n_ok}/{bar.n}")
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if workers > 1 and pool is not None:
            pool.terminate()
        store.close()
        if workers == 1 and "sim" in _WORKER:
            _WORKER.pop("sim").close()
    report = GenerateReport(len(jobs), n_ok, n_steps, time.perf_counter() - t0, per_task, str(Path(store_path)))
    log.info("generated %d episodes (%d successful, %d steps) in %.1f s into %s", report.episodes, n_ok, n_steps,
             report.wall_s, store_path)
    return report
