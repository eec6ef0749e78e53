"""Reset-free practice (RoboFuME) on the sim WidowX, state mode, CPU-sized: writes benchmarks/results/practice.{md,json}.

Per seed:
    demos      scripted forward (put_cube_in_bowl) + backward (take_cube_out_of_bowl) episodes, noisy, some failures,
               with object state (observation.environment_state) and a 64 px front camera (for the classifier)
    classifier the CNN success classifier trained on those demos (robot_stack.practice.classifier); FP/FN measured
               on held-out practice attempts against the sim's truth
    offline    Cal-QL (calql_state.yaml recipe; one policy for both directions, one-hot task) on the demos
    before     forward and backward success from seeded resets (ground truth, deterministic actor, N each)
    practice   M reset-free attempts alternating forward/backward, labelled by the judge, learner round every k
    after      the same evaluation as before

    python benchmarks/bench_practice.py --seeds 0 1 2                     # judge = the trained classifier
    python benchmarks/bench_practice.py --seeds 0 --judge ground_truth    # the oracle-reward control
    python benchmarks/bench_practice.py --quick --seeds 0                 # a smoke run (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results"
FORWARD, BACKWARD = "put_cube_in_bowl", "take_cube_out_of_bowl"
EVAL_SEED = 1_000_000


def log(msg: str) -> None:
    print(f"[bench_practice {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sizes(quick: bool) -> dict:
    full = {"demos": 60, "failure_share": 0.3, "noise_m": 0.01, "offline_steps": 5000, "attempts": 120,
            "attempts_per_update": 2, "horizon_steps": 60, "eval_episodes": 20, "classifier_steps": 1500,
            "image_px": 64, "batch": 64, "rlpd_batch": 128, "utd": 1.0}
    if quick:
        full.update(demos=8, offline_steps=100, attempts=6, eval_episodes=4, classifier_steps=100)
    return full


def learner_cfg(S: dict, seed: int, learner: str = "calql_state"):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from robot_stack.learn.rl_service import RLLearnerConfig

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=[f"learner={learner}", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    # RLPD has no offline phase (its recipe's offline_steps 0 stays) and the Tier 1c batch of 128 (bench_learning).
    rlpd = d["algo"] == "rlpd"
    d.update(task=None, sources=["sim"], min_episodes=1,
             offline_steps=d["offline_steps"] if rlpd else S["offline_steps"],
             batch_size=S["rlpd_batch"] if rlpd else S["batch"],
             tensorboard_dir=None, val_every_episode=0, val_every_steps=0, checkpoint_every_steps=100_000,
             log_every_steps=1000, online=True, utd_ratio=S["utd"], seed=seed, poll_interval_s=0.1)
    d["policy_config"] = {**d["policy_config"], "conditioning": "onehot"}
    return RLLearnerConfig.from_dict(d)


def evaluate_both(policy, S: dict) -> dict:
    from robot_stack.learn.evaluate import evaluate
    from robot_stack.sim.env import SimConfig, TabletopSim

    out = {}
    for task in (FORWARD, BACKWARD):
        sim = TabletopSim(SimConfig(task=task, cameras=()))
        try:
            r = evaluate(policy, task, episodes=S["eval_episodes"], seed=EVAL_SEED, sim=sim)
        finally:
            sim.close()
        out[task] = {"successes": r.successes, "episodes": r.n, "success_rate": r.success_rate}
    return out


def forward_start_drift(store) -> dict:
    """Where forward attempts start, against where the forward demos start: the cube's offset from the homed arm
    (observation.environment_state[0:2] at step 0; every attempt begins with the arm at home), as the distance from
    the demos' mean start; and practice success (truth) for starts near the demos' (<= 5 cm) and far from them."""
    import numpy as np

    def starts(eps):
        return np.array([store.get_episode(i, ["observation.environment_state"])["observation.environment_state"][0, :2]
                         for i in eps]).reshape(-1, 2)

    from robot_stack.sim.tasks import get_task

    names = {FORWARD, get_task(FORWARD).language}   # the store files the task's language
    demos = [i for i in store.episodes(source="sim") if store.episode_meta(i).task in names]
    practice = [i for i in store.episodes(source="practice") if store.episode_meta(i).phase == "forward"]
    if not demos or not practice:
        return {}
    center = starts(demos).mean(axis=0)
    d = np.linalg.norm(starts(practice) - center, axis=1)
    ok = np.array([bool(store.episode_meta(i).true_success) for i in practice])
    near = d <= 0.05
    return {"demo_start_spread_m": round(float(np.linalg.norm(starts(demos) - center, axis=1).mean()), 3),
            "median_m": round(float(np.median(d)), 3), "share_near": round(float(near.mean()), 2),
            "success_near": f"{int(ok[near].sum())}/{int(near.sum())}",
            "success_far": f"{int(ok[~near].sum())}/{int((~near).sum())}"}


def run_seed(seed: int, S: dict, judge_kind: str, work: Path, learner: str = "calql_state") -> dict:
    import torch

    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.practice.classifier import evaluate_classifier, train_classifier
    from robot_stack.practice.inprocess import run_practice
    from robot_stack.practice.judge import ClassifierJudge, GroundTruthJudge
    from robot_stack.practice.session import PracticeConfig, TaskPair
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.generate import generate
    from robot_stack.store import TrajectoryStore

    torch.set_num_threads(1)
    store = work / "store.zarr"
    t0 = time.perf_counter()
    generate(store, tasks=[FORWARD, BACKWARD], episodes=S["demos"], failure_share=S["failure_share"],
             noise_std_m=S["noise_m"], workers=1, image_size_px=S["image_px"], cameras=("front",),
             environment_state=True, seed=7000 + seed, progress=False)
    out: dict = {"seed": seed, "judge": judge_kind, "learner": learner, "gen_s": round(time.perf_counter() - t0, 1)}
    pair = TaskPair.from_sim_tasks(FORWARD)
    with TrajectoryStore.open(store, mode="r") as s:
        demo_episodes = list(range(s.n_episodes))
        t1 = time.perf_counter()
        clf = train_classifier(s, pair.languages, config={"camera": "front", "image_size_px": S["image_px"]},
                               steps=S["classifier_steps"], seed=seed,
                               progress=lambda m: log(f"s{seed} classifier step {m['step']} loss {m['loss']:.3f}"),
                               progress_every=500)
        out["classifier_s"] = round(time.perf_counter() - t1, 1)
        out["classifier_on_demos"] = evaluate_classifier(clf, s, demo_episodes)
    svc = RLLearnerService(store, work / "ckpt", learner_cfg(S, seed, learner))
    curve = []
    before = {}
    orig = svc.train_offline

    def offline_then_eval():
        t = time.perf_counter()
        orig()
        out["offline_s"] = round(time.perf_counter() - t, 1)
        before.update(evaluate_both(svc.policy, S))
        log(f"s{seed} after {svc.step} offline updates: " + ", ".join(
            f"{k} {v['successes']}/{v['episodes']}" for k, v in before.items()))

    svc.train_offline = offline_then_eval

    def on_update(r):
        st = r.status
        curve.append({"attempts": r.attempts, "step": r.step, "version": r.version,
                      "true_success_rate": st["true_success_rate"], "success_rate": st["success_rate"],
                      "interventions": st["interventions"], "wall_s": round(r.wall_s, 1)})
        if r.attempts % 10 == 0 or r.attempts == S["attempts"]:
            log(f"s{seed} attempt {r.attempts}/{S['attempts']} step {r.step} truth fw/bw "
                f"{st['true_success_rate']} judge {st['success_rate']} interventions {st['interventions']}")

    sim = TabletopSim(SimConfig(task=FORWARD, cameras=("front",), image_size_px=S["image_px"], reset_free=True,
                                seed=8000 + seed))
    judge = ClassifierJudge(clf) if judge_kind == "classifier" else GroundTruthJudge(sim)
    t2 = time.perf_counter()
    try:
        final = run_practice(svc, sim, store, pair, judge,
                             PracticeConfig(horizon_steps=S["horizon_steps"], max_attempts=S["attempts"],
                                            scheduled_reset_steps=S.get("scheduled_reset_steps", 0)),
                             attempts_per_update=S["attempts_per_update"], seed=seed, on_update=on_update)
    finally:
        sim.close()
    out["practice_s"] = round(time.perf_counter() - t2, 1)
    out["after"] = evaluate_both(svc.policy, S)
    out["before"] = before
    with TrajectoryStore.open(store, mode="r") as s:
        out["classifier_on_practice"] = evaluate_classifier(clf, s, s.episodes(source="practice"))
        out["forward_start_drift"] = forward_start_drift(s)
        log(f"s{seed} forward attempts' start vs the demos': {out['forward_start_drift']}")
    out.update(final={k: final[k] for k in ("attempts", "interventions", "scheduled_resets", "resets_by_kind",
                                             "interventions_per_100_attempts", "classifier", "true_success_rate")},
               curve=curve, updates=svc.step)
    log(f"s{seed} done: before {before} after {out['after']}")
    return out


def report(cells: list[dict], S: dict, judge: str) -> str:
    def rate(d):
        return f"{d['successes']}/{d['episodes']}"

    lines = ["# Reset-free practice (RoboFuME), sim WidowX, state mode", "",
             f"Judge: **{judge}**. Sizes: {json.dumps(S)}. Written by `python benchmarks/bench_practice.py`.", "",
             "| seed | forward before | forward after | backward before | backward after | attempts | interventions "
             "/100 | classifier FP/FN on practice (fw; bw) | wall (min) |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        cp = c["classifier_on_practice"]
        fpfn = "; ".join(f"{(v['fp_rate'] or 0):.2f}/{(v['fn_rate'] or 0):.2f}" for v in cp.values()) if cp else "-"
        wall = (c["gen_s"] + c["classifier_s"] + c.get("offline_s", 0) + c["practice_s"]) / 60
        lines.append(f"| {c['seed']} | {rate(c['before'][FORWARD])} | {rate(c['after'][FORWARD])} | "
                     f"{rate(c['before'][BACKWARD])} | {rate(c['after'][BACKWARD])} | {c['final']['attempts']} | "
                     f"{c['final']['interventions_per_100_attempts']} | {fpfn} | {wall:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--judge", choices=("classifier", "ground_truth"), default="classifier")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--learner", default="calql_state", help="learner recipe (calql_state, rlpd_state, ...)")
    ap.add_argument("--attempts", type=int, help="practice attempts per seed (default: the sizes' attempts)")
    ap.add_argument("--scheduled-reset-steps", type=int, default=0,
                    help="reset the scene every N executed steps (counted apart; 120 = before every forward attempt, "
                         "the episodic control of a reset-free run)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    S = sizes(args.quick)
    if args.attempts:
        S["attempts"] = args.attempts
    S["scheduled_reset_steps"] = args.scheduled_reset_steps
    cells = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"bench_practice_{seed}_") as tmp:
            cells.append(run_seed(seed, S, args.judge, Path(tmp), args.learner))
    name = ("practice" + ("" if args.learner == "calql_state" else f"_{args.learner}") + ("_quick" if args.quick else "")
            + ("" if args.judge == "classifier" else f"_{args.judge}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"sizes": S, "judge": args.judge, "cells": cells}, indent=2))
    (out / f"{name}.md").write_text(report(cells, S, args.judge))
    print(report(cells, S, args.judge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
