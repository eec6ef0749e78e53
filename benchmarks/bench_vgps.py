"""V-GPS in sim (issue 13): a deliberately imperfect generalist steered by a language-conditioned Cal-QL critic.
Writes benchmarks/results/vgps.{md,json}.

    per seed s:
      data:       scripted expert on TASKS (same scene: the cube goes in the bowl OR on the plate), noisy
                  (translation noise NOISE_M per step) and mixed quality (FAILURE_SHARE of the episodes heavy-noise or
                  truncated), state mode (observation.state + environment_state), generator seed 7000 + s
      generalist: conf/policy/diffusion_state.yaml trained by BC on EVERY episode (failures included) with no task
                  input (the diffusion policy has none): it must guess the container from the scene, and imitates
                  the failures too. Deliberately imperfect, frozen.
      critic:     conf/learner/vgps_state.yaml (Cal-QL, V-GPS labels, task language by the hashing text encoder,
                  FiLM on the state encoder) on the same store, by the RL learner service; a "critic" checkpoint
      critic check: on held-out episodes (generator seed 9000 + s), Spearman(Q(s, a_data), MC return) and the
                  success AUC of each episode's mean Q (does the critic rank at all?)
      evaluation: the PolicyRunner the inference node runs (checkpoints loaded, hashed, first forward pass; the
                  critic through its own critic runner), gripper held 5 ticks, on seeded resets
                  EVAL_SEED + 1000·s + i, i < episodes, tasks alternating; success = the sim's ground truth
                  conditions: policy (its own select_action: one chunk per 4 ticks), k1 (one sample per tick, the
                  same sampling path V-GPS uses, no re-ranking), vgps_k{10,50}_b{0,1} (argmax / softmax(Q/β)),
                  random_k10 (uniform pick among 10 samples: the paper's control)
      latency:    the runner's per-tick step() time in the same run, relative to k1

Every (seed, condition) writes <out>/vgps_cells/s<seed>_<condition>.json as it finishes; trained models are cached
under --work, so conditions can be (re-)run one at a time; the report is rebuilt from every cell present.

    nice -n 5 python benchmarks/bench_vgps.py --seeds 0,1,2            # the grid (about 25 min per seed, 1 thread)
    python benchmarks/bench_vgps.py --quick --seeds 0                   # smoke run, a couple of minutes
    python benchmarks/bench_vgps.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TASKS = ("put_cube_in_bowl", "put_cube_on_plate")
EVAL_SEED = 1_000_000
NOISE_M = 0.015
FAILURE_SHARE = 0.4
CONDITIONS = ("policy", "k1", "vgps_k10_b0", "vgps_k10_b1", "vgps_k50_b0", "vgps_k50_b1", "random_k10")


def log(msg: str) -> None:
    print(f"[bench_vgps {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sizes(quick: bool) -> dict:
    full = {"episodes_data": 80, "episodes_heldout": 20, "diffusion_steps": 4000, "critic_steps": 2000,
            "batch": 64, "critic_batch": 128, "critic_tau": 0.02, "eval_ddim_steps": 5, "eval_episodes": 50}
    if quick:
        full.update(episodes_data=6, episodes_heldout=4, diffusion_steps=20, critic_steps=20, eval_episodes=2)
    return full


def parse_condition(name: str) -> dict:
    """'vgps_k10_b1' -> {mode: vgps, k: 10, beta: 1.0}; 'k1' -> one sample per tick; 'policy' -> select_action."""
    if name == "policy":
        return {"mode": None}
    if name == "k1":
        return {"mode": "vgps", "k": 1, "beta": 0.0}
    parts = name.split("_")
    out = {"mode": parts[0], "k": int(parts[1][1:]), "beta": 0.0}
    if len(parts) > 2:
        out["beta"] = float(parts[2][1:])
    return out


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = hcompose("robot_stack", overrides=[*overrides, f"task={TASKS[0]}", "data_dir=/tmp"])
    return OmegaConf.to_container(c, resolve=True)


# ------------------------------------------------------------------------------------------------ training
def make_data(store: Path, n: int, seed: int) -> dict:
    from robot_stack.sim.generate import generate

    rep = generate(store, tasks=list(TASKS), episodes=n, noise_std_m=NOISE_M, failure_share=FAILURE_SHARE, seed=seed,
                   cameras=(), workers=1, environment_state=True, progress=False)
    return {"episodes": rep.episodes, "successes": rep.successes, "steps": rep.steps}


def train_generalist(store: Path, out: Path, S: dict, seed: int) -> dict:
    import torch

    from robot_stack.learn.bc import dataset_keys, fit_normalizer, make_optimizer, train_steps
    from robot_stack.learn.dataset import FrameDataset, eligible_episodes
    from robot_stack.policies.base import make_policy, policy_class
    from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
    from robot_stack.store import TrajectoryStore

    torch.manual_seed(seed)
    config = policy_class("diffusion").config_class.from_dict(compose(["policy=diffusion_state"])["policy"]["config"])
    with TrajectoryStore.open(store, mode="r") as st:
        episodes = eligible_episodes(st, ("sim",), False, None)       # failures too: mixed quality, on purpose
        dataset = FrameDataset.from_store(st, episodes, dataset_keys(config))
        schema = PolicySchema.from_store_schema(st.schema)
    policy = make_policy("diffusion", config, fit_normalizer(dataset))
    opt = make_optimizer(policy)
    t0 = time.perf_counter()
    step, losses = 0, []
    rng = np.random.default_rng(seed)
    while step < S["diffusion_steps"]:
        n = min(500, S["diffusion_steps"] - step)
        step, part = train_steps(policy, opt, dataset, n, S["batch"], rng, start_step=step)
        losses.append(float(np.mean(part[-100:])))
        log(f"generalist s{seed}: {step}/{S['diffusion_steps']} updates, loss {losses[-1]:.4f}, "
            f"{time.perf_counter() - t0:.0f} s")
    save_checkpoint(policy.eval(), policy.normalizer, schema, out, 1, step, extra={"bench": "vgps generalist"})
    return {"updates": step, "train_s": time.perf_counter() - t0, "loss": losses[-1], "episodes": len(episodes)}


def critic_config(S: dict, seed: int):
    from robot_stack.learn.rl_service import RLLearnerConfig

    d = compose(["learner=vgps_state"])["learner"]
    d.pop("torch_threads", None)
    d.update(batch_size=S["critic_batch"], offline_steps=S["critic_steps"], checkpoint_every_steps=S["critic_steps"],
             tensorboard_dir=None, val_every_episode=0, val_every_steps=0, log_every_steps=500, min_episodes=1,
             sources=["sim"], seed=seed, poll_interval_s=0.1)
    # CPU budget: τ above V-GPS's 5e-3 so values propagate in a few thousand updates (the report says so).
    d["algo_config"] = {**d["algo_config"], "tau": S["critic_tau"]}
    return RLLearnerConfig.from_dict(d)


def train_critic(store: Path, out: Path, S: dict, seed: int) -> dict:
    from robot_stack.algos.vgps import critic_service

    cfg = critic_config(S, seed)

    def progress(m):
        log(f"critic s{seed}: step {int(m['step'])} {m['perf/steps_per_s']:.1f} upd/s q_data "
            f"{m.get('critic/q_data', float('nan')):.2f} mc {m.get('critic/mc_return', float('nan')):.2f} "
            f"bound_rate {m.get('critic/bound_rate', float('nan')):.2f}")

    svc = critic_service(store, out, cfg, on_progress=progress)
    t0 = time.perf_counter()
    svc.run()
    tail = svc.metrics_history[-200:]
    keys = ("critic/q_data", "critic/q_rand", "critic/q_pi_current", "critic/mc_return", "critic/bound_rate",
            "critic/td_loss")
    return {"updates": svc.step, "train_s": time.perf_counter() - t0, "tasks": list(svc.policy.config.tasks),
            "diagnostics": {k: float(np.mean([m[k] for m in tail if k in m])) for k in keys}}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def auc(scores_pos: list[float], scores_neg: list[float]) -> float:
    """P(score of a success > score of a failure), ties half (Mann-Whitney)."""
    if not scores_pos or not scores_neg:
        return float("nan")
    p, n = np.asarray(scores_pos)[:, None], np.asarray(scores_neg)[None, :]
    return float(((p > n) + 0.5 * (p == n)).mean())


def critic_check(critic_dir: Path, heldout: Path) -> dict:
    """Does the critic rank? On held-out episodes: Spearman(Q(s_t, a_t), G_t) under V-GPS labels, the success AUC of
    each episode's mean Q, and Q under the episode's own task vs the other task (language sensitivity)."""
    from robot_stack.algos.vgps import vgps_labels
    from robot_stack.policies.checkpoint import load_critic
    from robot_stack.store import TrajectoryStore
    from robot_stack.types import ACTION_KEY

    critic, _ = load_critic(critic_dir)
    keys = critic.observation_keys()
    qs, gs, pos, neg, own_minus_other = [], [], [], [], []
    with TrajectoryStore.open(heldout, mode="r") as st:
        for i in range(st.n_episodes):
            meta = st.episode_meta(i)
            ep = st.get_episode(i, keys=[*keys, ACTION_KEY])
            _, _, g = vgps_labels(len(ep[ACTION_KEY]), bool(meta.success), 0.98)
            q = []
            for lang in critic.config.tasks:
                critic.config.deploy_task = lang
                q.append(np.array([critic.q_values({k: ep[k][t] for k in keys}, ep[ACTION_KEY][t:t + 1])[0]
                                   for t in range(len(g))]))
            own = q[list(critic.config.tasks).index(meta.task)]
            qs.append(own)
            gs.append(g)
            (pos if meta.success else neg).append(float(own.mean()))
            if meta.success and len(q) > 1:
                other = np.mean([qq for j, qq in enumerate(q) if j != list(critic.config.tasks).index(meta.task)], 0)
                own_minus_other.append(float((own - other).mean()))
    q_all, g_all = np.concatenate(qs), np.concatenate(gs)
    return {"episodes": len(qs), "successes": len(pos), "spearman_q_vs_mc_return": spearman(q_all, g_all),
            "success_auc_mean_q": auc(pos, neg), "mean_q_success": float(np.mean(pos)) if pos else float("nan"),
            "mean_q_failure": float(np.mean(neg)) if neg else float("nan"),
            "q_own_minus_other_task_on_successes": float(np.mean(own_minus_other)) if own_minus_other else float("nan")}


def store_summary(path: Path) -> dict:
    from robot_stack.store import TrajectoryStore

    with TrajectoryStore.open(path, mode="r") as st:
        metas = [st.episode_meta(i) for i in range(st.n_episodes)]
        steps = int(st.n_steps) if hasattr(st, "n_steps") else None
    return {"episodes": len(metas), "successes": sum(bool(m.success) for m in metas), "steps": steps}


def acting_generalist(d: Path, S: dict) -> None:
    """The generalist the evaluation runs: the trained weights (v1) re-saved as v2 with `eval_ddim_steps` DDIM steps
    (the recipe samples with 10; fewer halve every condition's sampling cost on this CPU budget). Same for every
    condition, so the comparison is unaffected; the report says so."""
    from robot_stack.policies.checkpoint import PolicySchema, latest_checkpoint, load_policy, save_checkpoint

    policy, manifest = load_policy(d / "generalist" / "v0001")
    if manifest.version != 1 or latest_checkpoint(d / "generalist").name != "v0001":
        return
    schema = PolicySchema.from_json(json.loads((d / "generalist" / "v0001" / "schema.json").read_text()))
    policy.config.num_inference_steps = S["eval_ddim_steps"]
    save_checkpoint(policy, policy.normalizer, schema, d / "generalist", 2, manifest.step, parent=1,
                    extra={"bench": "vgps generalist", "eval_ddim_steps": S["eval_ddim_steps"]})


def prepare(seed: int, S: dict, work: Path) -> dict:
    """Data, generalist and critic of one seed, cached under work/s<seed>/ (info.json marks completion; each stage's
    output is reused when a run was stopped after it)."""
    from robot_stack.policies.checkpoint import read_manifest

    d = work / f"s{seed}"
    info_path = d / "info.json"
    if info_path.is_file():
        return json.loads(info_path.read_text())
    d.mkdir(parents=True, exist_ok=True)
    info: dict = {"seed": seed}
    t0 = time.perf_counter()
    if (d / "heldout.zarr").is_dir() and (d / "generalist" / "v0001").is_dir():
        info["data"], info["heldout"] = store_summary(d / "store.zarr"), store_summary(d / "heldout.zarr")
    else:
        info["data"] = make_data(d / "store.zarr", S["episodes_data"], 7000 + seed)
        info["heldout"] = make_data(d / "heldout.zarr", S["episodes_heldout"], 9000 + seed)
        info["data"]["gen_s"] = time.perf_counter() - t0
    log(f"s{seed}: data {info['data']}, held-out {info['heldout']}")
    if (d / "generalist" / "v0001").is_dir():
        m = read_manifest(d / "generalist" / "v0001")
        info["generalist"] = {"updates": m.step, "train_s": float("nan"), "loss": float("nan"), "reused": True}
    else:
        info["generalist"] = train_generalist(d / "store.zarr", d / "generalist", S, seed)
    acting_generalist(d, S)
    info["critic"] = train_critic(d / "store.zarr", d / "critic", S, seed)
    info["critic_check"] = critic_check(d / "critic", d / "heldout.zarr")
    log(f"s{seed}: critic check {info['critic_check']}")
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return info


# ------------------------------------------------------------------------------------------------ evaluation
class RunnerActor:
    """The evaluation loop's Actor over a PolicyRunner (what the inference node ticks), recording per tick."""

    reads_environment_state = True

    def __init__(self, runner):
        self.runner = runner
        self.latency_s: list[float] = []
        self.infos: list[dict] = []

    def reset(self, task: str, seed: int, language: str) -> None:
        self.runner.set_episode_mode(language)

    def act(self, obs, sim):
        action = self.runner.step(obs)
        if action is None:
            raise RuntimeError(f"the runner held (no action): {self.runner.health()}")
        self.latency_s.append(self.runner.stats.last_step_latency_s)
        self.infos.append(dict(self.runner.last_selection))
        return action


def run_condition(seed: int, name: str, S: dict, work: Path) -> dict:
    from robot_stack.inference.manifest import make_update
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.inference.selection import VGPSSelector
    from robot_stack.learn.evaluate import rollout
    from robot_stack.policies.checkpoint import CRITIC_KIND, PolicySchema, latest_checkpoint
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.store import TrajectoryStore

    d = work / f"s{seed}"
    with TrajectoryStore.open(d / "store.zarr", mode="r") as st:
        schema = PolicySchema.from_store_schema(st.schema)
    cond = parse_condition(name)
    selector, critic_runner = None, None
    if cond["mode"] is not None:
        if cond["mode"] == "vgps" and cond["k"] > 1:
            critic_runner = PolicyRunner(schema, checkpoint_kind=CRITIC_KIND)
            critic_runner.request_load(make_update(latest_checkpoint(d / "critic")))
            if not critic_runner.wait_idle(120):
                raise RuntimeError("critic did not load within 120 s")
        selector = VGPSSelector(k=cond["k"], beta=cond["beta"], mode=cond["mode"], seed=seed,
                                critic_runner=critic_runner)
    runner = PolicyRunner(schema, selector=selector)
    runner.request_load(make_update(latest_checkpoint(d / "generalist")))
    if not runner.wait_idle(120):
        raise RuntimeError("generalist did not load within 120 s")
    actor = RunnerActor(runner)
    sim = TabletopSim(SimConfig(task=TASKS[0], cameras=()))
    episodes = []
    t0 = time.perf_counter()
    try:
        for i in range(S["eval_episodes"]):
            task = TASKS[i % len(TASKS)]
            first = len(actor.infos)
            r, _ = rollout(sim, actor, task, EVAL_SEED + 1000 * seed + i)
            ticks = actor.infos[first:]
            qc = [t["q_chosen"] for t in ticks if "q_chosen" in t]
            spread = [t["q_spread"] for t in ticks if "q_spread" in t]
            episodes.append({"task": task, "seed": EVAL_SEED + 1000 * seed + i, "success": bool(r.success),
                             "steps": r.steps, "goal_dist_m": r.goal_distance_m,
                             "mean_q_chosen": float(np.mean(qc)) if qc else None,
                             "mean_q_spread": float(np.mean(spread)) if spread else None,
                             "fallbacks": sum("fallback" in t for t in ticks)})
            if (i + 1) % 10 == 0:
                ok = sum(e["success"] for e in episodes)
                log(f"s{seed} {name}: {i + 1}/{S['eval_episodes']} episodes, {ok} successes, "
                    f"{np.mean(actor.latency_s) * 1e3:.1f} ms/tick, {time.perf_counter() - t0:.0f} s")
    finally:
        sim.close()
        runner.close()
        if critic_runner is not None:
            critic_runner.close()
    lat = np.asarray(actor.latency_s)
    per_task = {t: [sum(e["success"] for e in episodes if e["task"] == t), sum(e["task"] == t for e in episodes)]
                for t in TASKS}
    return {"successes": sum(e["success"] for e in episodes), "episodes": len(episodes), "per_task": per_task,
            "latency_ms": {"mean": float(lat.mean() * 1e3), "p50": float(np.median(lat) * 1e3),
                           "p95": float(np.percentile(lat, 95) * 1e3), "ticks": int(lat.size)},
            "eval_s": time.perf_counter() - t0, "episode_rows": episodes, "condition": cond}


def latency_cell(seed: int, work: Path, rounds: int = 60) -> dict:
    """Per-tick step() time of the runner for each K, interleaved round-robin on the same observations (recorded from
    one sim episode) so that the load of this shared machine falls on every K alike; ratios vs k1 are the overhead."""
    from robot_stack.inference.manifest import make_update
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.inference.selection import VGPSSelector
    from robot_stack.learn.evaluate import observe
    from robot_stack.policies.checkpoint import CRITIC_KIND, PolicySchema, latest_checkpoint
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.tasks import get_task
    from robot_stack.store import TrajectoryStore

    d = work / f"s{seed}"
    with TrajectoryStore.open(d / "store.zarr", mode="r") as st:
        schema = PolicySchema.from_store_schema(st.schema)
    sim = TabletopSim(SimConfig(task=TASKS[0], cameras=()))
    try:
        sim.reset(seed=EVAL_SEED)
        obs_list = []
        for _ in range(rounds):
            obs_list.append(observe(sim, (), environment_state=True))
            sim.apply_ee_delta(np.array([0.005, 0.0, -0.005, 0, 0, 0, 1.0], np.float32))
    finally:
        sim.close()
    runners, closers = {}, []
    for name, k in (("policy", None), ("k1", 1), ("vgps_k10", 10), ("vgps_k50", 50)):
        selector = None
        if k is not None:
            critic_runner = PolicyRunner(schema, checkpoint_kind=CRITIC_KIND)
            critic_runner.request_load(make_update(latest_checkpoint(d / "critic")))
            critic_runner.wait_idle(120)
            closers.append(critic_runner)
            selector = VGPSSelector(k=k, beta=0.0, seed=seed, critic_runner=critic_runner)
        r = PolicyRunner(schema, selector=selector)
        r.request_load(make_update(latest_checkpoint(d / "generalist")))
        r.wait_idle(120)
        r.set_episode_mode(get_task(TASKS[0]).language)
        r.step(obs_list[0])                      # swap in, warm up
        runners[name] = r
        closers.append(r)
    times = {n: [] for n in runners}
    parts = {n: {"sample_ms": [], "score_ms": []} for n in runners}
    try:
        for obs in obs_list:
            for name, r in runners.items():
                r.step(obs)
                times[name].append(r.stats.last_step_latency_s * 1e3)
                for key in ("sample_ms", "score_ms"):
                    if key in r.last_selection:
                        parts[name][key].append(r.last_selection[key])
    finally:
        for r in closers:
            r.close()
    out = {n: {"mean_ms": float(np.mean(t)), "median_ms": float(np.median(t)),
               **{k: float(np.mean(v)) for k, v in parts[n].items() if v}} for n, t in times.items()}
    for n in out:
        out[n]["median_vs_k1"] = out[n]["median_ms"] / out["k1"]["median_ms"]
    return {"rounds": rounds, "conditions": out}


# ------------------------------------------------------------------------------------------------ report
def load_cells(cells_dir: Path, quick: bool) -> list[dict]:
    cells = [json.loads(p.read_text()) for p in sorted(cells_dir.glob("*.json"))]
    return [c for c in cells if c.get("quick", False) == quick]


def write_report(cells: list[dict], infos: dict, S: dict, out_dir: Path) -> None:
    ok = [c for c in cells if c["status"] == "ok"]
    seeds = sorted({c["seed"] for c in ok})
    names = [n for n in CONDITIONS if any(c["condition_name"] == n for c in ok)]
    by = {(c["seed"], c["condition_name"]): c for c in ok}
    commands = sorted({c.get("command", "?") for c in cells})

    def overhead(seed: int, name: str) -> float | None:
        base = by.get((seed, "k1"))
        c = by.get((seed, name))
        return None if base is None or c is None else c["latency_ms"]["mean"] / base["latency_ms"]["mean"]

    rows = []
    for name in names:
        per = [by[(s, name)] for s in seeds if (s, name) in by]
        rates = [c["successes"] / c["episodes"] for c in per]
        ovh = [o for s in seeds if (o := overhead(s, name)) is not None]
        rows.append({"condition": name, "seeds": [c["seed"] for c in per],
                     "successes": [c["successes"] for c in per], "episodes": [c["episodes"] for c in per],
                     "mean_rate": float(np.mean(rates)), "std_rate": float(np.std(rates)),
                     "per_task": {t: [sum(c["per_task"][t][0] for c in per), sum(c["per_task"][t][1] for c in per)]
                                  for t in TASKS},
                     "latency_ms_mean": float(np.mean([c["latency_ms"]["mean"] for c in per])),
                     "latency_ms_p95": float(np.mean([c["latency_ms"]["p95"] for c in per])),
                     "overhead_vs_k1": float(np.mean(ovh)) if ovh else None})
    (out_dir / "vgps.json").write_text(json.dumps({
        "commands": commands, "sizes": S, "tasks": TASKS, "noise_m": NOISE_M, "failure_share": FAILURE_SHARE,
        "machine": platform.platform(), "rows": rows, "seed_info": infos,
        "cells": [{k: v for k, v in c.items() if k != "episode_rows"} for c in cells]}, indent=1) + "\n")
    L = ["# V-GPS: re-ranking a deliberately imperfect diffusion generalist with a Cal-QL critic (sim, state mode)", "",
         "Written by `benchmarks/bench_vgps.py` (its docstring has the recipe). Cells from: "
         + ", ".join(f"`{c}`" for c in commands) + f". Sizes: `{json.dumps(S)}`.", "",
         f"Tasks {', '.join(f'`{t}`' for t in TASKS)} (same scene, simulated WidowX 250s), alternating per episode. "
         f"Data per seed: {S['episodes_data']} scripted episodes, translation noise {NOISE_M} m/step, "
         f"{int(FAILURE_SHARE * 100)} % made to fail (heavy noise or truncated). Generalist: diffusion_state trained "
         f"{S['diffusion_steps']} updates on every episode, failures included, without any task input. Critic: "
         f"learner=vgps_state, {S['critic_steps']} updates at batch {S['critic_batch']} with τ {S['critic_tau']} (V-GPS: 5e-3; "
         "raised so values propagate within this CPU budget). The generalist samples with "
         f"{S['eval_ddim_steps']} DDIM steps in every condition (the recipe's 10 halved for the CPU budget; same weights). "
         "Success: ground truth at any step, seeded resets "
         f"{EVAL_SEED} + 1000·seed + i (identical across conditions of a seed). One torch thread, nice 5, on a "
         "shared 2-core machine.", "",
         "| condition | success per seed | mean rate (± std over seeds) | per task (all seeds) | ms/tick mean | "
         "ms/tick p95 | latency ×k1 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        per = ", ".join(f"{s}/{n}" for s, n in zip(r["successes"], r["episodes"], strict=True))
        tasks = ", ".join(f"{t.split('_')[-1]} {a}/{b}" for t, (a, b) in r["per_task"].items())
        ovh = "—" if r["overhead_vs_k1"] is None else f"×{r['overhead_vs_k1']:.2f}"
        L.append(f"| {r['condition']} | {per} | {r['mean_rate']:.2f} ± {r['std_rate']:.2f} | {tasks} | "
                 f"{r['latency_ms_mean']:.1f} | {r['latency_ms_p95']:.1f} | {ovh} |")
    L += ["", "Conditions: `policy` = the generalist's own select_action (one 4-action chunk per 4 ticks); `k1` = one "
          "sample per tick through the V-GPS path (`sample_actions(obs, 1)`, no critic): the un-steered baseline "
          "with the same replanning as V-GPS; `vgps_kK_bB` = K samples, critic argmax (B = 0) or softmax(Q/β) draw; "
          "`random_k10` = a uniform pick among 10 samples (the paper's control: statistically the same as k1).", ""]
    if infos:
        L += ["Critic check on held-out episodes (does the critic rank?):", "",
              "| seed | data successes | generalist loss | critic updates | Spearman(Q, MC return) | success AUC of mean Q "
              "| mean Q success / failure | Q own task − other task (successes) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s, info in sorted(infos.items()):
            cc = info["critic_check"]
            L.append(f"| {s} | {info['data']['successes']}/{info['data']['episodes']} | "
                     f"{info['generalist']['loss']:.4f} | {info['critic']['updates']} | "
                     f"{cc['spearman_q_vs_mc_return']:.2f} | {cc['success_auc_mean_q']:.2f} | "
                     f"{cc['mean_q_success']:.1f} / {cc['mean_q_failure']:.1f} | "
                     f"{cc['q_own_minus_other_task_on_successes']:.2f} |")
        L.append("")
    pairs = paired(by, seeds, names)
    if pairs:
        L += ["Paired on identical resets (all seeds): episodes where the condition succeeded and the reference failed "
              "(wins) and the reverse (losses); a sign test's two-sided p under 'no difference':", "",
              "| condition | vs | wins | losses | p |", "| --- | --- | --- | --- | --- |"]
        for r in pairs:
            L.append(f"| {r['condition']} | {r['reference']} | {r['wins']} | {r['losses']} | {r['p']:.2g} |")
        L.append("")
    lat = {s: info["latency"] for s, info in sorted(infos.items()) if "latency" in info}
    if lat:
        L += ["Latency, interleaved (each round steps every runner once on the same recorded observation, so the "
              "shared machine's load falls on every K alike); median ms per tick (×k1; the chunked policy: mean, as 3 of its 4 "
              "ticks only pop a queued action), and V-GPS's two parts:", "",
              "| seed | policy (chunked) | k1 | vgps K=10 | vgps K=50 | K=10 sample / score ms | K=50 sample / score ms |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for s, c in lat.items():
            c = c["conditions"]
            L.append(f"| {s} | mean {c['policy']['mean_ms']:.1f} (×{c['policy']['mean_ms'] / c['k1']['mean_ms']:.2f}) | "
                     f"{c['k1']['median_ms']:.1f} | {c['vgps_k10']['median_ms']:.1f} (×{c['vgps_k10']['median_vs_k1']:.2f}) | "
                     f"{c['vgps_k50']['median_ms']:.1f} (×{c['vgps_k50']['median_vs_k1']:.2f}) | "
                     f"{c['vgps_k10']['sample_ms']:.1f} / {c['vgps_k10']['score_ms']:.2f} | "
                     f"{c['vgps_k50']['sample_ms']:.1f} / {c['vgps_k50']['score_ms']:.2f} |")
        L.append("")
    bad = [c for c in cells if c["status"] != "ok"]
    if bad:
        L += ["Failed cells: " + ", ".join(f"{c['condition_name']} s{c['seed']}" for c in bad), ""]
    missing = [f"{n} s{s}" for s in seeds for n in CONDITIONS if (s, n) not in by]
    if missing:
        L += ["Not run (time): " + ", ".join(missing), ""]
    # The hand-written findings below the tables survive a regeneration of the tables.
    md = out_dir / "vgps.md"
    old = md.read_text() if md.is_file() else ""
    findings = old[old.index("## Findings"):] if "## Findings" in old else ""
    md.write_text("\n".join(L) + "\n" + findings)
    if rows:
        plot(rows, out_dir / "vgps.png")


def paired(by: dict, seeds: list[int], names: list[str]) -> list[dict]:
    """Per-reset comparison of each re-ranking condition against k1 and random_k10 (same resets within a seed)."""
    from math import comb

    out = []
    for ref in ("k1", "random_k10"):
        for name in names:
            if name in ("policy", "k1", ref) or not name.startswith(("vgps", "random")):
                continue
            wins = losses = 0
            for s in seeds:
                a, b = by.get((s, name)), by.get((s, ref))
                if a is None or b is None:
                    continue
                ref_ok = {e["seed"]: e["success"] for e in b["episode_rows"]}
                for e in a["episode_rows"]:
                    if e["seed"] in ref_ok:
                        wins += e["success"] and not ref_ok[e["seed"]]
                        losses += ref_ok[e["seed"]] and not e["success"]
            n = wins + losses
            if n:
                tail = sum(comb(n, i) for i in range(0, min(wins, losses) + 1)) / 2 ** n
                out.append({"condition": name, "reference": ref, "wins": int(wins), "losses": int(losses),
                            "p": min(1.0, 2 * tail)})
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(rows))
    ax.bar(x, [r["mean_rate"] for r in rows], color="lightsteelblue")
    for i, r in enumerate(rows):
        ax.plot([i] * len(r["successes"]), [s / n for s, n in zip(r["successes"], r["episodes"], strict=True)], "k.")
    ax.set_xticks(x, [r["condition"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="success rate (bar: mean, dots: seeds)", ylim=(0, 1), title="V-GPS on a diffusion generalist (sim)")
    bx.bar(x, [r["latency_ms_mean"] for r in rows], color="tan")
    bx.set_xticks(x, [r["condition"] for r in rows], rotation=30, ha="right", fontsize=7)
    bx.set(ylabel="ms per tick (evaluation runs)", title="runner step() time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--latency-only", action="store_true", help="only the interleaved latency cell of prepared seeds")
    ap.add_argument("--work", default="/tmp/bench_vgps_work")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    S = sizes(args.quick)
    out = Path(args.out)
    cells_dir = out / ("vgps_cells_quick" if args.quick else "vgps_cells")
    cells_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) / ("quick" if args.quick else "full")
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    if args.latency_only:
        import torch

        torch.set_num_threads(1)
        for seed in seeds:
            info_path = work / f"s{seed}" / "info.json"
            info = json.loads(info_path.read_text())
            info["latency"] = latency_cell(seed, work)
            log(f"s{seed} latency: {json.dumps(info['latency']['conditions'])}")
            info_path.write_text(json.dumps(info, indent=1) + "\n")
    elif not args.report_only:
        import torch

        torch.set_num_threads(1)
        command = "python benchmarks/bench_vgps.py " + " ".join(sys.argv[1:])
        for seed in seeds:
            try:
                info = prepare(seed, S, work)
            except Exception:  # noqa: BLE001 - a failed seed is reported, the others still run
                log(traceback.format_exc())
                continue
            log(f"s{seed}: prepared (generalist {info['generalist']['train_s']:.0f} s, critic "
                f"{info['critic']['train_s']:.0f} s)")
            for name in [c for c in args.conditions.split(",") if c]:
                if name not in CONDITIONS:
                    raise SystemExit(f"unknown condition {name!r}; known: {CONDITIONS}")
                t0 = time.perf_counter()
                try:
                    cell = run_condition(seed, name, S, work)
                    cell["status"] = "ok"
                except Exception:  # noqa: BLE001
                    cell = {"status": "error", "error": traceback.format_exc()}
                    log(cell["error"])
                cell.update(seed=seed, condition_name=name, quick=args.quick, command=command,
                            wall_s=time.perf_counter() - t0)
                (cells_dir / f"s{seed}_{name}.json").write_text(json.dumps(cell, indent=1) + "\n")
                if cell["status"] == "ok":
                    log(f"s{seed} {name}: {cell['successes']}/{cell['episodes']} "
                        f"({cell['latency_ms']['mean']:.1f} ms/tick)")
                infos = {p.parent.name[1:]: json.loads(p.read_text()) for p in sorted(work.glob("s*/info.json"))}
                write_report(load_cells(cells_dir, args.quick), infos, S, out)
    infos = {p.parent.name[1:]: json.loads(p.read_text()) for p in sorted(work.glob("s*/info.json"))}
    write_report(load_cells(cells_dir, args.quick), infos, S, out)
    log(f"wrote {out / 'vgps.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
