"""Learning evidence on the MuJoCo kitchen, CPU-sized (issue 9): writes benchmarks/results/learning.{md,json,png}.

    Tier 0  pixel BC ceiling: 20 scripted demos (front + wrist, 64 px) ─► bc_conv (the demo's policy) ─► success.
            RL rows are only worth comparing once this row is clearly above zero.
    Tier 1  state mode (observation.state + observation.environment_state, encoder-free actor_critic):
      (a) PTR vs BC vs CQL-from-scratch on the held-out `put_block_in_bowl` from 10 demos:
          multi-task prior data (every non-held-out task, noisy, 30 % failures) + the 10 target demos
          ─► PTR = CQL (ptr.yaml recipe) 100 % prior, then 90/10 prior/target  vs  bc_actor / CQL on the 10 demos
      (b) Cal-QL vs CQL offline → online on `put_cube_in_bowl` from mixed data (≥ 50 % failures):
          offline updates ─► validity gate (Cal-QL's bound active on ≥ 20 % of policy actions, else VOID)
          ─► online rounds (robot_stack.learn.online: the live policy explores with a held gripper, its episodes
             land in the store as source "policy", the learner trains UTD 1 on 50/50 batches) ─► learning curve
      (c) RLPD from 20 demos online (rlpd_state.yaml: no offline updates, 50/50, UTD 4, 10-head LN ensemble),
          and AWAC on the same critic (awac_state.yaml: 2000 offline updates of its weighted-BC actor, then online)
    Tier 2  pixels online: not part of this script's default run (see learning.md for why).

Every cell (tier, method, seed) runs in its own process (1 torch thread; `--jobs` of them at once) and writes
<work>/cells/<tier>_<method>_<seed>.json; the report is rebuilt from every cell file present, so a re-run of one
cell (`--only 1b:calql:2`) updates the tables. Evaluation: robot_stack.learn.evaluate, seeded resets
1_000_000 + i (identical for every method), deterministic actor, ground-truth success at any step.

    python benchmarks/bench_learning.py                      # everything, 3 seeds, 2 processes (~45 min)
    python benchmarks/bench_learning.py --tiers 1c --seeds 0 --quick     # a smoke run in a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
EVAL_SEED = 1_000_000
TIER1A_TASK, TIER1B_TASK = "put_block_in_bowl", "put_cube_in_bowl"
METHODS = {"0": ["bc_conv"], "1s": ["bc"], "1a": ["ptr", "bc", "cql"], "1b": ["calql", "cql", "bc"], "1c": ["rlpd", "awac", "bc"]}


def log(msg: str) -> None:
    print(f"[bench_learning {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ sizes
def sizes(quick: bool) -> dict:
    """Every count of the benchmark in one place (the report prints them)."""
    full = {"t0_demos": 20, "t0_steps": 2000, "t0_px": 64, "eval_episodes": 30,
            "t1a_prior_per_task": 15, "t1a_target_demos": 10, "t1a_ptr_steps": 6000, "t1a_switch": 4000,
            "t1a_scratch_steps": 3000, "t1a_bc_steps": 3000,
            "t1b_episodes": 100, "t1b_failure_share": 0.6, "t1b_offline_steps": 15000, "t1b_rounds": 8,
            "t1b_episodes_per_round": 10, "t1b_eval_every_rounds": 2,
            "t1c_demos": 20, "t1c_rounds": 30, "t1c_episodes_per_round": 10, "t1c_eval_every_rounds": 2,
            "t1s_demos": 100, "t1s_steps": 5000,
            "batch": 64, "rlpd_batch": 128, "online_eval_episodes": 20}
    if quick:
        full.update(t0_demos=4, t0_steps=50, eval_episodes=4, t1a_prior_per_task=2, t1a_target_demos=3,
                    t1a_ptr_steps=100, t1a_switch=50, t1a_scratch_steps=50, t1a_bc_steps=50, t1b_episodes=6,
                    t1b_offline_steps=50, t1b_rounds=2, t1b_episodes_per_round=2, t1b_eval_every_rounds=1,
                    t1c_demos=4, t1c_rounds=2, t1c_episodes_per_round=2, t1c_eval_every_rounds=1,
                    online_eval_episodes=4, t1s_demos=4, t1s_steps=50)
    return full


# The *_state.yaml policy: proprio + object state, Gaussian noise 0.3 (standardised units) on both while training.
STATE_POLICY = {"cameras": [], "arch": "none", "use_state": True, "use_environment_state": True,
                "low_dim_noise_std": 0.3, "latent_dim": 128,
                "actor_hidden_dims": [256, 256], "critic_hidden_dims": [128, 128], "conditioning": "onehot",
                "fixed_action_dims": [3, 4]}


def learner_cfg(name: str, sim_task: str, S: dict, seed: int, **overrides):
    """robot_stack/conf/learner/<name>.yaml composed by hydra (defaults lists and ${task.language} resolved),
    with the benchmark's CPU sizes; the algorithm recipe itself is the YAML's."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from robot_stack.learn.rl_service import RLLearnerConfig

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=[f"learner={name}", f"task={sim_task}", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    d.update(batch_size=S["rlpd_batch"] if d["algo"] in ("rlpd", "awac") else S["batch"], tensorboard_dir=None, val_every_episode=0, val_every_steps=0,
             log_every_steps=500, min_episodes=1, checkpoint_every_steps=100_000, sources=["sim"], seed=seed,
             poll_interval_s=0.1)
    if d["policy_type"] == "actor_critic":
        d["policy_config"] = {**d["policy_config"], **STATE_POLICY,
                              **({"num_qs": 10, "critic_layer_norm": True} if d["algo"] in ("rlpd", "awac") else {})}
    d.update(overrides)
    return RLLearnerConfig.from_dict(d)


def state_sim(task: str):
    from robot_stack.sim.env import SimConfig, TabletopSim

    return TabletopSim(SimConfig(task=task, cameras=()))


def success(policy, task: str, sim, n: int, stochastic: bool = False) -> dict:
    """Ground-truth success on the seeded evaluation resets; `stochastic`: the policy's sampled actions with the
    gripper held 5 ticks (what the arm executes while practising), else its deterministic action."""
    from robot_stack.learn.evaluate import evaluate

    r = evaluate(policy, task, episodes=n, seed=EVAL_SEED, sim=sim, stochastic=stochastic)
    return {"successes": r.successes, "episodes": r.n, "success_rate": r.success_rate,
            "goal_dist_m": r.mean_goal_distance_m}


def success_in_state_sim(policy, task: str, n: int) -> dict:
    sim = state_sim(task)
    try:
        return success(policy, task, sim, n)
    finally:
        sim.close()


def diagnostics(svc, last: int = 200) -> dict:
    """Means of the last `last` updates' metrics that say whether the critic/actor learned (or why not)."""
    tail = svc.metrics_history[-last:]
    keys = ("critic/q_data", "critic/q_rand", "critic/q_pi_current", "critic/mc_return", "critic/bound_rate",
            "critic/td_loss", "critic/loss", "actor/alpha", "actor/entropy", "actor/bc_mse", "actor/bc_gripper_acc")
    return {k: float(np.mean([m[k] for m in tail if k in m])) for k in keys if any(k in m for m in tail)}


def generate_state(store, tasks, episodes, failure_share, seed):
    from robot_stack.sim.generate import generate

    rep = generate(store, tasks=tasks, episodes=episodes, failure_share=failure_share, seed=seed, cameras=(),
                   workers=1, environment_state=True, progress=False)
    return {"episodes": rep.episodes, "successes": rep.successes, "steps": rep.steps}


def progress_printer(tag: str):
    def progress(m):
        shown = " ".join(f"{k.split('/')[-1]}={m[k]:.3g}" for k in ("critic/q_data", "critic/bound_rate",
                                                                      "actor/alpha", "actor/bc_mse") if k in m)
        log(f"{tag} step {int(m['step'])} {m['perf/steps_per_s']:.1f} upd/s {shown}")
    return progress


def offline(cfg, store, work: Path, tag: str):
    from robot_stack.learn.rl_service import RLLearnerService

    svc = RLLearnerService(store, work / f"ckpt_{tag.replace(' ', '_')}", cfg, on_progress=progress_printer(tag))
    t0 = time.perf_counter()
    svc.run()
    return svc, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ cells
def cell_0(method: str, seed: int, S: dict, work: Path) -> dict:
    """Tier 0: the demo's bc_conv on 20 pixel demos of put_cube_in_bowl, both cameras."""
    from robot_stack.learn.bc import LearnerConfig, train_bc
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.generate import generate
    from robot_stack.store import TrajectoryStore

    store_path = work / "store.zarr"
    t0 = time.perf_counter()
    rep = generate(store_path, tasks=[TIER1B_TASK], episodes=S["t0_demos"], failure_share=0.0, seed=seed,
                   cameras=("front", "wrist"), image_size_px=S["t0_px"], workers=1, progress=False)
    gen_s = time.perf_counter() - t0
    cfg = LearnerConfig(sources=("sim",), success_only=True, batch_size=64, seed=seed, log_every_steps=500)
    t0 = time.perf_counter()
    with TrajectoryStore.open(store_path, mode="r") as store:
        res = train_bc(store, cfg, S["t0_steps"], on_progress=lambda m: log(f"0 bc_conv s{seed} step {m['step']} "
                                                                             f"loss {m['loss']:.4f}"),
                       policy_config={"image_size_px": S["t0_px"]})
    train_s = time.perf_counter() - t0
    sim = TabletopSim(SimConfig(task=TIER1B_TASK, image_size_px=S["t0_px"], cameras=("front", "wrist")))
    try:
        after = success(res.policy, TIER1B_TASK, sim, S["eval_episodes"])
    finally:
        sim.close()
    return {"task": TIER1B_TASK, "data": {"demos": rep.episodes, "successes": rep.successes, "steps": rep.steps,
                                          "gen_s": gen_s},
            "updates": res.step, "train_s": train_s, "after": after}


def cell_1s(method: str, seed: int, S: dict, work: Path) -> dict:
    """Tier 1 sanity ceiling: bc_actor in state mode on plenty of demos (what the state network can reach)."""
    store = work / "store.zarr"
    t0 = time.perf_counter()
    data = generate_state(store, [TIER1B_TASK], S["t1s_demos"], 0.0, 5000 + seed)
    data["gen_s"] = time.perf_counter() - t0
    cfg = learner_cfg("bc_actor", TIER1B_TASK, S, seed, offline_steps=S["t1s_steps"])
    svc, train_s = offline(cfg, store, work, f"1s bc s{seed}")
    after = success_in_state_sim(svc.policy, TIER1B_TASK, S["eval_episodes"])
    return {"task": TIER1B_TASK, "data": data, "updates": svc.step, "train_s": train_s, "after": after,
            "diagnostics": diagnostics(svc)}


def cell_1a(method: str, seed: int, S: dict, work: Path) -> dict:
    from robot_stack.sim.tasks import get_task, prior_tasks

    store = work / "store.zarr"
    t0 = time.perf_counter()
    prior = prior_tasks()
    d_prior = generate_state(store, prior, S["t1a_prior_per_task"] * len(prior), 0.3, 1000 + seed)
    d_target = generate_state(store, [TIER1A_TASK], S["t1a_target_demos"], 0.0, 2000 + seed)
    gen_s = time.perf_counter() - t0
    language = get_task(TIER1A_TASK).language
    # "ptr+a1@15000": a recipe variant (VARIANTS) and/or another update budget (switch at 2/3): diagnostic rows.
    name, _, steps = method.partition("@")
    base, _, variant = name.partition("+")
    if base == "ptr":
        n = int(steps or S["t1a_ptr_steps"])
        cfg = learner_cfg("ptr", TIER1A_TASK, S, seed, offline_steps=n,
                          target_switch_step=S["t1a_switch"] if not steps else (2 * n) // 3)
    elif base == "cql":
        cfg = learner_cfg("cql", TIER1A_TASK, S, seed, offline_steps=int(steps or S["t1a_scratch_steps"]),
                          task=language)
    else:
        cfg = learner_cfg("bc_actor", TIER1A_TASK, S, seed, offline_steps=int(steps or S["t1a_bc_steps"]),
                          task=language)
    if variant:
        apply_variant(cfg, variant)
    svc, train_s = offline(cfg, store, work, f"1a {method} s{seed}")
    after = success_in_state_sim(svc.policy, TIER1A_TASK, S["eval_episodes"])
    control = None
    if base == "ptr":   # the review's control: the same multi-task policy on a prior task it has data for
        control = success_in_state_sim(svc.policy, TIER1B_TASK, S["eval_episodes"])
    return {"task": TIER1A_TASK, "prior_task_control": control,
            "data": {"prior": d_prior, "prior_tasks": prior, "target": d_target, "gen_s": gen_s},
            "updates": svc.step, "train_s": train_s, "after": after, "diagnostics": diagnostics(svc),
            "transitions": {"prior": len(svc.prior_pool), "target": len(svc.target_pool)}}


# Recipe variants for diagnostic rows (method "algo+name"): algo_config keys over the YAML's; the key "policy" holds
# policy_config keys.
VARIANTS = {
    # PTR whose actor also imitates the successful transitions (TD3+BC's unfiltered term, demo_guidance.py) and whose
    # state encoder sees the task one-hot: the fix for multi-task CQL's state-independent actor (learning_findings.md,
    # "PTR with a BC term in the actor", one seed: held-out 0/20 -> 5/20).
    "bct": {"bc_weight": 1.0, "bc_q_filter": False, "policy": {"condition_low_dim_encoder": True}},
    # BC warm start of the actor for the first 2000 offline updates (CQLConfig.bc_steps: CQL's policy_eval_start,
    # CORL bc_steps), then the YAML's Cal-QL/CQL actor loss; tests whether online RL improves a BC-level start.
    "bcws": {"bc_steps": 2000},
    # CQL α 1 fixed: Cal-QL's Adroit-binary value (algorithms.md §0 table) instead of the CPU recipe's 5.
    # benchmarks/diag_calql_bound.py 1 15000 0: 14/20 after 15000 offline updates (α 5: 0.10–0.13 in Tier 1b).
    "a1": {"cql_alpha": 1.0},
    # RLPD from a BC start: 2000 offline updates whose actor loss is BC on the demos while the critic evaluates it
    # (RLPDConfig.bc_steps), then RLPD as published; +bcq also keeps Nair et al.'s Q-filtered BC term online.
    "bci": {"bc_steps": 2000},
    "bcq": {"bc_steps": 2000, "bc_weight": 1.0},
    # ... and the online BC term unfiltered (TD3+BC's form: the actor stays anchored to the successful data).
    "bcw": {"bc_steps": 2000, "bc_weight": 1.0, "bc_q_filter": False},
    "bcw100": {"bc_steps": 2000, "bc_weight": 100.0, "bc_q_filter": False},
    # ... with the target's min over all 10 heads instead of a random 2 (pessimistic backup against the
    # overestimation measured after the first online round: Q(s, a_data) −17.9 → −3.7 while success fell to 0).
    "bcwmin": {"bc_steps": 2000, "bc_weight": 1.0, "bc_q_filter": False, "critic_subsample": 0},
    # AWAC's temperature: λ 1 (CORL) leaves the weights nearly uniform on rewards of −1 per step (advantages of a
    # few tenths), i.e. close to BC of everything in the buffer, the policy's own failed attempts included.
    "l03": {"awac_lambda": 0.3},
    "l01": {"awac_lambda": 0.1},
    # AWAC whose actor gives failed episodes' transitions weight 0 (the critic still learns from them): tests
    # whether the dip after the first online round is the actor imitating its own failed attempts.
    "sonly": {"imitate_failures": False},
}


def apply_variant(cfg, variant: str) -> None:
    v = dict(VARIANTS[variant])
    cfg.policy_config = {**cfg.policy_config, **v.pop("policy", {})}
    cfg.algo_config = {**cfg.algo_config, **v}


def online_cell(method: str, seed: int, S: dict, work: Path, tier: str) -> dict:
    from robot_stack.learn.online import run_online
    from robot_stack.learn.rl_service import RLLearnerService

    task = TIER1B_TASK
    store = work / "store.zarr"
    t0 = time.perf_counter()
    # "calql@15000": another offline budget (1b) or number of online rounds (1c, "rlpd@20"); "calql+bcws": a recipe
    # variant (VARIANTS; a variant's bc_steps become offline updates); "awac": awac_state.yaml in 1c. All but the
    # plain method names are diagnostic rows.
    name, _, steps = method.partition("@")
    algo, _, variant = name.partition("+")
    if tier == "1b":
        data = generate_state(store, [task], S["t1b_episodes"], S["t1b_failure_share"], 3000 + seed)
    else:
        data = generate_state(store, [task], S["t1c_demos"], 0.0, 4000 + seed)
    if algo == "bc":   # the baseline RL must beat: bc_actor on the same data's successful episodes, no online data
        data["gen_s"] = time.perf_counter() - t0
        cfg = learner_cfg("bc_actor", task, S, seed, offline_steps=int(steps or S["t1s_steps"]))
        svc, train_s = offline(cfg, store, work, f"{tier} bc s{seed}")
        return {"task": task, "data": data, "updates": svc.step, "train_s": train_s,
                "after": success_in_state_sim(svc.policy, task, S["eval_episodes"]),
                "offline_diagnostics": diagnostics(svc)}
    if tier == "1b":
        cfg = learner_cfg(algo, task, S, seed, offline_steps=int(steps or S["t1b_offline_steps"]), online=True)
        if variant:
            apply_variant(cfg, variant)
        rounds, per_round, every = S["t1b_rounds"], S["t1b_episodes_per_round"], S["t1b_eval_every_rounds"]
    else:
        cfg = learner_cfg(f"{algo}_state", task, S, seed)
        if variant:
            apply_variant(cfg, variant)
            if "bc_steps" in VARIANTS[variant]:
                cfg.offline_steps = int(cfg.algo_config["bc_steps"])
        # "rlpd@20": the same cell with 20 online rounds instead of t1c_rounds (a longer-budget diagnostic row).
        rounds, per_round, every = int(steps or S["t1c_rounds"]), S["t1c_episodes_per_round"], S["t1c_eval_every_rounds"]
    data["gen_s"] = time.perf_counter() - t0
    tag = f"{tier} {method} s{seed}"
    svc = RLLearnerService(store, work / "ckpt", cfg, on_progress=progress_printer(tag))
    sim, eval_sim = state_sim(task), state_sim(task)
    curve: list[dict] = []
    out: dict = {"task": task, "data": data}
    t0 = time.perf_counter()
    orig_train_offline = svc.train_offline

    def train_offline_then_eval():
        orig_train_offline()
        out["offline_s"] = time.perf_counter() - t0
        out["offline_diagnostics"] = diagnostics(svc, 200) if svc.metrics_history else {}
        before = success(svc.policy, task, eval_sim, S["online_eval_episodes"])
        curve.append({"online_episodes": 0, "updates": svc.step, **before})
        log(f"{tag}: after {svc.step} offline updates {before['successes']}/{before['episodes']} "
            f"{out['offline_diagnostics']}")

    svc.train_offline = train_offline_then_eval

    def on_round(r):
        if r.round % every == 0 or r.round == rounds:
            ev = success(svc.policy, task, eval_sim, S["online_eval_episodes"])
            curve.append({"online_episodes": r.episodes, "online_transitions": r.transitions, "updates": r.step,
                          "collected_successes": r.collected_successes, **ev})
            log(f"{tag}: {r.episodes} online episodes ({r.collected_successes}/{per_round} exploring successes), "
                f"{r.step} updates: {ev['successes']}/{ev['episodes']}")

    try:
        res = run_online(svc, sim, task, store, rounds, per_round, seed=seed, on_round=on_round)
        out["after"] = success(svc.policy, task, eval_sim, S["eval_episodes"])
        # The same final policy acting as it explores (sampled actions, held gripper), on the same seeded resets:
        # the online rounds' exploring successes come from other resets while the policy still changes.
        out["after_stochastic"] = success(svc.policy, task, eval_sim, S["eval_episodes"], stochastic=True)
    finally:
        sim.close()
        eval_sim.close()
    out.update(curve=curve, updates=svc.step, train_s=time.perf_counter() - t0, online_diagnostics=diagnostics(svc),
               online_episodes=res[-1].episodes if res else 0,
               collected_successes=[r.collected_successes for r in res])
    if tier == "1b":
        out["before"] = {k: curve[0][k] for k in ("successes", "episodes", "success_rate")}
    return out


CELLS = {"0": cell_0, "1s": cell_1s, "1a": cell_1a, "1b": lambda m, s, S, w: online_cell(m, s, S, w, "1b"),
         "1c": lambda m, s, S, w: online_cell(m, s, S, w, "1c")}


def run_cell(spec: str, quick: bool, out_dir: Path) -> None:
    import tempfile

    import torch

    torch.set_num_threads(1)
    tier, method, seed = spec.split(":")
    S = sizes(quick)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench_{tier}_{method}_{seed}_") as tmp:
        try:
            rec = CELLS[tier](method, int(seed), S, Path(tmp))
            rec["status"] = "ok"
        except Exception as e:  # the report shows the failure; the other cells go on
            rec = {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            log(f"cell {spec} FAILED: {rec['error']}")
    rec.update(tier=tier, method=method, seed=int(seed), wall_s=time.perf_counter() - t0, quick=quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_file = out_dir / f".{tier}_{method}_{seed}.json.tmp"
    tmp_file.write_text(json.dumps(rec, indent=1, default=float) + "\n")
    tmp_file.replace(out_dir / f"{tier}_{method}_{seed}.json")


# ------------------------------------------------------------------------------------------------ report
def fmt(x, nd=2) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def frac(d: dict | None) -> str:
    return "–" if not d else f"{d['successes']}/{d['episodes']}"


def mean_rate(rows, key="after") -> float:
    v = [r[key]["success_rate"] for r in rows if r.get("status") == "ok" and r.get(key)]
    return float(np.mean(v)) if v else float("nan")


def plot(cells: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -e '.[bench]'): no plot")
        return False
    online = [c for c in cells if c.get("status") == "ok" and c.get("curve")]
    if not online:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = {"calql": "C0", "cql": "C1", "rlpd": "C2", "awac": "C4", "rlpd@20": "C5"}
    for ax, tier, title in ((axes[0], "1b", "Tier 1b: offline → online (mixed data)"),
                            (axes[1], "1c", "Tier 1c: online from 20 demos")):
        # The current recipes only (variants such as calql@5000 or [env-only] are in the tables): each seed thin,
        # the mean over seeds thick.
        # Tier 1c also draws the longer-budget rows (rlpd@20: the same recipe with more online rounds).
        excluded = "[+" if tier == "1c" else "@[+"
        rows = [c for c in online if c["tier"] == tier and not any(ch in c["method"] for ch in excluded)]
        for method in sorted({c["method"] for c in rows}):
            runs = [c for c in rows if c["method"] == method]
            color = colors.get(method, "C3")
            for c in runs:
                ax.plot([p["online_episodes"] for p in c["curve"]], [p["success_rate"] for p in c["curve"]],
                        color=color, alpha=0.3, linewidth=1)
            n = min(len(c["curve"]) for c in runs)
            ax.plot([p["online_episodes"] for p in runs[0]["curve"][:n]],
                    [float(np.mean([c["curve"][i]["success_rate"] for c in runs])) for i in range(n)],
                    color=color, linewidth=2.5, marker="o", label=f"{method} (mean of {len(runs)} seeds)")
        bc = [c["after"]["success_rate"] for c in cells
              if c.get("tier") == tier and c.get("method") == "bc" and c.get("status") == "ok" and c.get("after")]
        if bc:   # the bar the online methods must clear: BC on the same data, no online episodes
            ax.axhline(float(np.mean(bc)), color="k", linestyle="--", linewidth=1.2,
                       label=f"bc on the same data (mean of {len(bc)} seeds)")
        ax.set_title(title)
        ax.set_xlabel("online episodes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("success rate (deterministic eval)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def report(cells: list[dict], command: str, total_wall_s: float | None) -> str:
    import torch

    quick = any(c.get("quick") for c in cells)
    S = sizes(quick)
    by = {t: [c for c in cells if c["tier"] == t] for t in METHODS}
    L = ["# Learning evidence (benchmarks/bench_learning.py)", "",
         f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} CPU, no GPU; cells ran as "
         "parallel processes with 1 torch thread each" + (f"; total wall {total_wall_s / 60:.1f} min" if total_wall_s
                                                            else "") + ".",
         f"Command: `{command}`" + ("  **(--quick smoke sizes: not evidence)**" if quick else ""), "",
         f"Sizes: `{json.dumps(S)}`", "",
         f"Evaluation: `robot_stack.learn.evaluate`, seeded resets {EVAL_SEED}… (identical for every method), "
         "deterministic actor, success = the task's ground truth at any step within 60 steps. Seeds vary the data "
         "generation, network init, batches and exploration.", ""]
    errors = [c for c in cells if c.get("status") != "ok"]

    def table(rows, cols, header):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in sorted(rows, key=lambda r: (r["method"], r["seed"])):
            out.append("| " + " | ".join(f(r) for f in cols) + " |")
        return out

    ok = lambda r: r.get("status") == "ok"  # noqa: E731
    # Columns every tier's table starts with: method, seed, final success (and the object's final goal distance).
    head = [lambda r: r["method"], lambda r: str(r["seed"]), lambda r: frac(r.get("after")) if ok(r) else "error"]
    dist = lambda r: fmt(r.get("after", {}).get("goal_dist_m"), 3)  # noqa: E731
    if by["0"]:
        L += ["## Tier 0 — pixel BC ceiling", "",
              f"bc_conv (robot_stack.policies.bc_conv: the demo's policy, MSE + gripper BCE, lr 3e-4) on "
              f"{S['t0_demos']} scripted demos of `{TIER1B_TASK}`, front + wrist at {S['t0_px']} px, "
              f"{S['t0_steps']} updates of batch 64. Goal ≥ 60 %.", ""]
        L += table(by["0"], [*head, dist,
                             lambda r: fmt(r.get("train_s"), 0), lambda r: fmt(r["wall_s"], 0)],
                   ["method", "seed", "success", "goal dist (m)", "train (s)", "wall (s)"])
        L += ["", f"Mean success: {fmt(mean_rate(by['0']))}.", ""]
    if by["1s"]:
        L += ["## Tier 1 sanity ceiling — state-mode BC on plenty of demos", "",
              f"bc_actor (state mode, the Tier 1 network) on {S['t1s_demos']} scripted demos of `{TIER1B_TASK}`, "
              f"{S['t1s_steps']} updates: what this observation, network and action interface can reach by "
              "imitation; the Tier 1 RL rows are read against it.", ""]
        L += table(by["1s"], [*head, dist,
                              lambda r: fmt(r.get("diagnostics", {}).get("actor/bc_mse"), 4),
                              lambda r: fmt(r.get("diagnostics", {}).get("actor/bc_gripper_acc"), 3),
                              lambda r: fmt(r.get("train_s"), 0)],
                   ["method", "seed", "success", "goal dist (m)", "BC MSE (normalised)", "gripper acc", "train (s)"])
        L += ["", f"Mean success: {fmt(mean_rate(by['1s']))}.", ""]
    if by["1a"]:
        L += ["## Tier 1a — PTR vs BC vs CQL from scratch, held-out task, 10 demos (state mode)", "",
              f"Prior: {S['t1a_prior_per_task']} episodes of each non-held-out task (30 % failures); target: "
              f"{S['t1a_target_demos']} demos of held-out `{TIER1A_TASK}`. PTR = ptr.yaml (CQL α 5, γ .98, 4+4 "
              f"actions, reward −1/0) for {S['t1a_ptr_steps']} updates, 100 % prior until {S['t1a_switch']} then "
              f"90/10; CQL = cql.yaml on the 10 demos for {S['t1a_scratch_steps']}; BC = bc_actor on the 10 demos "
              f"for {S['t1a_bc_steps']}. Goal: PTR ≥ BC + 20 points.", ""]
        L += table(by["1a"], [*head, dist,
                              lambda r: frac(r.get("prior_task_control")),
                              lambda r: fmt(r.get("diagnostics", {}).get("critic/q_data")),
                              lambda r: fmt(r.get("diagnostics", {}).get("actor/alpha"), 3),
                              lambda r: str(r.get("updates", "–")), lambda r: fmt(r.get("train_s"), 0)],
                   ["method", "seed", "success (held-out)", "goal dist (m)", f"control: on prior `{TIER1B_TASK}`",
                    "Q(s,a_data)", "α", "updates", "train (s)"])
        means = {m: mean_rate([r for r in by["1a"] if r["method"] == m]) for m in METHODS["1a"]}
        L += ["", "Mean success: " + ", ".join(f"{m} {fmt(v)}" for m, v in means.items())
              + f". PTR − BC = {fmt(100 * (means['ptr'] - means['bc']), 0)} points.", ""]
    if by["1b"]:
        L += ["## Tier 1b — Cal-QL vs CQL, offline → online (state mode)", "",
              f"{S['t1b_episodes']} scripted episodes of `{TIER1B_TASK}` with {int(100 * S['t1b_failure_share'])} % "
              f"deliberate failures; calql.yaml / cql.yaml (identical but for Cal-QL's MC-return bound) for "
              f"{S['t1b_offline_steps']} offline updates, then {S['t1b_rounds']} rounds of "
              f"{S['t1b_episodes_per_round']} online episodes (sampled actions, gripper held ≥ 5 ticks), UTD 1 on "
              "50/50 offline/online batches.", "",
              "**Validity gate**: Cal-QL's bound (Q(s, π) clipped to the MC return) must be active on ≥ 20 % of "
              "policy actions at the end of offline; otherwise Cal-QL ≈ CQL by construction and the comparison is "
              "VOID. Rows `method@N` are the same recipe with N offline updates (an earlier, shorter run); rows "
              "`method+variant` change the recipe as `VARIANTS` in bench_learning.py says (e.g. +bcws: BC warm "
              "start of the actor for 2000 updates; +a1: CQL α 1).", ""]
        L += table(by["1b"], [lambda r: r["method"], lambda r: str(r["seed"]),
                              lambda r: (f"{r['data']['successes']}/{r['data']['episodes']}" if ok(r) else "–"),
                              lambda r: frac(r.get("before")), lambda r: frac(r.get("after")) if ok(r) else "error",
                              lambda r: " → ".join(fmt(p["success_rate"]) for p in r.get("curve", [])),
                              lambda r: fmt(r.get("offline_diagnostics", {}).get("critic/bound_rate")),
                              lambda r: fmt(r.get("offline_diagnostics", {}).get("critic/q_data")),
                              lambda r: fmt(r.get("offline_diagnostics", {}).get("critic/q_pi_current")),
                              lambda r: fmt(r.get("offline_diagnostics", {}).get("critic/q_rand")),
                              lambda r: fmt(r.get("offline_diagnostics", {}).get("critic/mc_return")),
                              lambda r: str(r.get("updates", "–")), lambda r: fmt(r["wall_s"], 0)],
                   ["method", "seed", "offline data (successes/episodes)", "before online", "after online",
                    "curve (every "
                    f"{S['t1b_eval_every_rounds'] * S['t1b_episodes_per_round']} ep)", "bound rate", "Q(s,a_data)",
                    "Q(s,π)", "Q(s,a_rand)", "MC return", "updates", "wall (s)"])
        rates = [r.get("offline_diagnostics", {}).get("critic/bound_rate") for r in by["1b"]
                 if r["method"] == "calql" and ok(r)]
        gate = bool(rates) and all(x is not None and x >= 0.2 for x in rates)
        L += ["", f"Validity gate: Cal-QL bound rate at the end of offline {', '.join(fmt(x) for x in rates)} → "
              f"**{'PASSED' if gate else 'VOID'}**.", ""]
        for m in dict.fromkeys(r["method"] for r in by["1b"]):
            rows = [r for r in by["1b"] if r["method"] == m]
            L.append(f"- {m}: before online {fmt(mean_rate(rows, 'before'))}, after {fmt(mean_rate(rows))} "
                     f"(mean over seeds).")
        L.append("")
    if by["1c"]:
        L += ["## Tier 1c — RLPD and AWAC from 20 demos, online (state mode)", "",
              f"rlpd_state.yaml: {S['t1c_demos']} scripted demos as the prior half of every batch, no offline "
              f"updates, {S['t1c_rounds']} rounds of {S['t1c_episodes_per_round']} online episodes, one RLPD update "
              "(4 critic minibatches + 1 actor step) per new transition. awac_state.yaml: the same critic, data and "
              "rounds with AWAC's advantage-weighted actor, after 2000 offline updates of the same loss on the demos "
              "(the curve's first point). `rlpd@N`: the rlpd recipe with N rounds. A row's rounds are the length of "
              "its curve's last point: the `awac` rows ran 8 rounds, the default until 2026-12-07. bc: bc_actor on "
              "the same 20 demos, no online data (the baseline). "
              "Goal ≥ 80 %.", ""]
        L += table(by["1c"], [*head, lambda r: frac(r.get("after_stochastic")),
                              lambda r: " → ".join(fmt(p["success_rate"]) for p in r.get("curve", [])),
                              lambda r: ", ".join(str(x) for x in r.get("collected_successes", [])),
                              lambda r: fmt(r.get("online_diagnostics", {}).get("actor/alpha"), 3),
                              lambda r: str(r.get("updates", "–")), lambda r: fmt(r["wall_s"], 0)],
                   ["method", "seed", "after online", "after online, sampled actions", "curve",
                    "exploring successes per round", "α", "updates", "wall (s)"])
        L.append("")
        for m in dict.fromkeys(r["method"] for r in by["1c"]):
            rows = [r for r in by["1c"] if r["method"] == m]
            starts = [r["curve"][0]["success_rate"] for r in rows if r.get("status") == "ok" and r.get("curve")]
            start = f"at the start of online {fmt(float(np.mean(starts)))}, " if starts else ""
            sampled = (f"; with sampled actions {fmt(mean_rate(rows, 'after_stochastic'))}"
                       if any(r.get("after_stochastic") for r in rows) else "")
            L.append(f"- {m}: {start}final {fmt(mean_rate(rows))}{sampled} (mean over {len(rows)} seeds).")
        L.append("")
    if errors:
        L += ["## Cells that failed", ""] + [f"- {c['tier']}:{c['method']}:{c['seed']}: `{c['error']}`"
                                             for c in errors] + [""]
    return "\n".join(L) + "\n"


def load_cells(out_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiers", default="0,1a,1b,1c", help="comma-separated subset of 0,1a,1b,1c")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="cells run at once (1 torch thread each)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not evidence")
    ap.add_argument("--only", nargs="*", default=None, help="cells tier:method:seed to (re)run")
    ap.add_argument("--cells-dir", type=Path, default=None, help="where cell JSONs go (default benchmarks/"
                    "results/learning_cells, or a tmp dir with --quick)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory of learning.md/json/png")
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from the cell files")
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cells_dir = args.cells_dir or (Path("/tmp/bench_learning_quick") if args.quick else RESULTS / "learning_cells")
    if args.cell:
        run_cell(args.cell, args.quick, cells_dir)
        return
    command = "python benchmarks/bench_learning.py " + " ".join(sys.argv[1:])
    stem = "learning_quick" if args.quick else "learning"
    previous = args.out / f"{stem}.json"
    if args.report_only and previous.is_file():   # keep naming the run that produced the cells
        command = json.loads(previous.read_text()).get("command", command).split(" (report")[0] + \
            " (report rebuilt with --report-only)"
    t0 = time.perf_counter()
    if not args.report_only:
        specs = args.only or [f"{t}:{m}:{s}" for t in args.tiers.split(",") for m in METHODS[t] for s in args.seeds]
        # Longest first, so the two processes finish together.
        order = {"1b": 0, "0": 1, "1a": 2, "1c": 3, "1s": 4}
        specs.sort(key=lambda s: order.get(s.split(":")[0], 9))
        log(f"{len(specs)} cells, {args.jobs} at a time, results in {cells_dir}")
        running: list[tuple[str, subprocess.Popen]] = []
        done = 0
        while specs or running:
            while specs and len(running) < args.jobs:
                spec = specs.pop(0)
                cmd = [sys.executable, __file__, "--cell", spec, "--cells-dir", str(cells_dir)]
                cmd += ["--quick"] if args.quick else []
                running.append((spec, subprocess.Popen(cmd)))
                log(f"started {spec}")
            time.sleep(1.0)
            for spec, p in list(running):
                if p.poll() is not None:
                    running.remove((spec, p))
                    done += 1
                    log(f"finished {spec} (exit {p.returncode}); {done} done, {len(specs)} queued")
    cells = load_cells(cells_dir)
    wall = None if args.report_only else time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    has_plot = plot(cells, args.out / f"{stem}.png")
    md = report(cells, command, wall)
    if has_plot:
        md += f"\n![learning curves]({stem}.png)\n"
    findings = args.out / "learning_findings.md"     # the hand-written reading of these numbers, kept beside them
    if not args.quick and findings.is_file():
        md += "\n" + findings.read_text()
    (args.out / f"{stem}.md").write_text(md)
    rows = [{k: c.get(k) for k in ("tier", "method", "seed", "status", "task", "before", "after", "after_stochastic",
                                   "prior_task_control", "curve",
                                   "online_episodes", "updates", "train_s", "wall_s", "offline_diagnostics",
                                   "online_diagnostics", "diagnostics", "data", "error") if k in c} for c in cells]
    (args.out / f"{stem}.json").write_text(json.dumps({"command": command, "sizes": sizes(args.quick),
                                                       "cells": rows}, indent=1, default=float) + "\n")
    print(md)


if __name__ == "__main__":
    main()
