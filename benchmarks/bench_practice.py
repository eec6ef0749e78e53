"""Reset-free practice (RoboFuME) on the sim WidowX, state mode, CPU-sized: writes benchmarks/results/practice.{md,json}.

Per seed:
    demos      scripted forward (put_cube_in_bowl) + backward (take_cube_out_of_bowl) episodes, noisy, some failures,
               with object state (observation.environment_state) and a 64 px front camera (for the classifier)
    classifier the CNN success classifier trained on those demos (robot_stack.practice.classifier); FP/FN measured
               on held-out practice attempts against the sim's truth
    learner    --learner's recipe (calql_state by default, rlpd_state; one policy for both directions, one-hot task)
    before     forward and backward success from seeded resets (ground truth, deterministic actor, N each)
    practice   M reset-free attempts alternating forward/backward, labelled by the judge, learner round every k
    after      the same evaluation as before
(the experiment itself is robot_stack/practice/experiment.py, which `robot-stack demo demo.loop=practice` runs too)

    python benchmarks/bench_practice.py --seeds 0 1 2                     # judge = the trained classifier
    python benchmarks/bench_practice.py --seeds 0 --judge ground_truth    # the oracle-reward control
    python benchmarks/bench_practice.py --quick --seeds 0                 # a smoke run (~2 min)
    python benchmarks/bench_practice.py --learner rlpd_state --attempts 240 --scheduled-reset-steps 1000
                                                                          # RLPD, RoboFuME's sim reset protocol
    python benchmarks/bench_practice.py --learner rlpd_state --obs pixels --attempts 160 --utd 0.5 \
        --scheduled-reset-steps 1000                                      # the same from the front camera
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


def log(msg: str) -> None:
    print(f"[bench_practice {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sizes(quick: bool) -> dict:
    full = {"demos": 60, "failure_share": 0.3, "noise_m": 0.01, "offline_steps": 5000, "attempts": 120,
            "attempts_per_update": 2, "horizon_steps": 60, "eval_episodes": 20, "classifier_steps": 1500,
            "image_px": 64, "batch": 64, "rlpd_batch": 128, "utd": 1.0}
    if quick:
        full.update(demos=8, offline_steps=100, attempts=6, eval_episodes=4, classifier_steps=100)
    return full


def run_seed(seed: int, S: dict, judge_kind: str, work: Path, learner: str = "calql_state",
             start_positives: bool = True, obs: str = "state", review_attempts: int = 0) -> dict:
    """One seed: robot_stack.practice.experiment.run_practice_experiment with the benchmark's sizes."""
    from robot_stack.practice.experiment import PracticeExperiment, run_practice_experiment

    x = PracticeExperiment(forward_task=FORWARD, learner=learner, judge=judge_kind, demos=S["demos"],
                           failure_share=S["failure_share"], noise_m=S["noise_m"], offline_steps=S["offline_steps"],
                           batch=S["batch"], rlpd_batch=S["rlpd_batch"], utd=S["utd"], attempts=S["attempts"],
                           attempts_per_update=S["attempts_per_update"], horizon_steps=S["horizon_steps"],
                           scheduled_reset_steps=S.get("scheduled_reset_steps", 0), eval_episodes=S["eval_episodes"],
                           classifier_steps=S["classifier_steps"], image_px=S["image_px"], seed=seed,
                           classifier_start_positives=start_positives, obs=obs, review_attempts=review_attempts)
    out = run_practice_experiment(x, work, log=lambda m: log(f"s{seed} {m}"))
    log(f"s{seed} done: before {out['before']} after {out['after']}")
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
    ap.add_argument("--obs", choices=("state", "pixels"), default="state",
                    help="pixels: proprio + the front camera through the recipe's image form (rlpd_state -> rlpd)")
    ap.add_argument("--utd", type=float, help="learner updates per new transition (default: the sizes' utd)")
    ap.add_argument("--review-attempts", type=int, default=0,
                    help="at each stuck/irreversible reset the truth corrects the judge's labels of the last N "
                         "attempts (a person's review) and the classifier is fine-tuned on them; 0 = no review")
    ap.add_argument("--no-start-positives", action="store_true",
                    help="train the classifier on final frames only (before 2026-12-08), not also on the demos' "
                         "first frames as the reverse task's goal")
    ap.add_argument("--tag", default="", help="suffix of the result files' names (keeps runs apart)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    S = sizes(args.quick)
    if args.attempts:
        S["attempts"] = args.attempts
    if args.utd:
        S["utd"] = args.utd
    S["obs"] = args.obs
    S["review_attempts"] = args.review_attempts
    S["scheduled_reset_steps"] = args.scheduled_reset_steps
    cells = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"bench_practice_{seed}_") as tmp:
            cells.append(run_seed(seed, S, args.judge, Path(tmp), args.learner, not args.no_start_positives,
                                  args.obs, args.review_attempts))
    name = ("practice" + ("" if args.learner == "calql_state" else f"_{args.learner}") + ("_quick" if args.quick else "")
            + ("" if args.obs == "state" else f"_{args.obs}")
            + ("" if args.judge == "classifier" else f"_{args.judge}") + args.tag
            # One process per seed is how seeds run side by side: each must write its own files.
            + "_s" + "-".join(map(str, args.seeds)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    S["classifier_start_positives"] = not args.no_start_positives
    (out / f"{name}.json").write_text(json.dumps({"sizes": S, "judge": args.judge, "cells": cells}, indent=2))
    (out / f"{name}.md").write_text(report(cells, S, args.judge))
    print(report(cells, S, args.judge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
