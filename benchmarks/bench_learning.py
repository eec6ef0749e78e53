"""Learning evidence (issue 5) on the MuJoCo toy kitchen, CPU-sized: writes benchmarks/results/learning.md.

    (a) PTR-style:  sim generator ─► multi-task prior data (non-held-out tasks, noise + failures) + 10 demos of a
                    held-out task ─► CQL (ptr.yaml recipe): 100 % prior for --pretrain-steps, then 90/10
                    prior/target for --finetune-steps ─► success on the held-out task
                    vs. bc_actor and CQL from scratch on the same 10 demos (--finetune-steps each)
    (b) Cal-QL vs CQL offline-to-online:  mixed-quality data of one task ─► offline --offline-steps ─► online:
                    blocks of --episodes-per-block policy episodes (stochastic actor, in-process sim) appended to
                    the store as source "policy" ─► the learner's online loop (50/50 offline/online, UTD 1) trains
                    on them ─► deterministic evaluation before online and after each block (dip or not)

Every evaluation is robot_stack.learn.evaluate (ground-truth success, seeded resets 1_000_000 + i, the same
resets for every method). Data are generated once (fixed seeds); `--seeds` varies the learner seed (network
init, batch sampling, augmentation) and the online exploration noise.

    python benchmarks/bench_learning.py                 # both parts as 2 parallel processes (1 torch thread each)
    python benchmarks/bench_learning.py --parts a --seeds 1 --pretrain-steps 200 ...   (smaller / faster)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "robot_stack" / "conf" / "learner"
EVAL_SEED = 1_000_000
ONLINE_SEED = 2_000_000


def log(msg: str) -> None:
    print(f"[bench_learning {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def small_policy(args) -> dict:
    """The CPU variant of the PTR/Cal-QL actor_critic: every design element, resnet_tiny widths, one camera."""
    return {"arch": "resnet_tiny", "base_width": args.base_width, "latent_dim": args.latent_dim,
            "image_size_px": args.px, "cameras": ["front"], "actor_hidden_dims": [256, 256],
            "critic_hidden_dims": [256, 256], "conditioning": "onehot", "use_state": args.use_state}


def learner_cfg(yaml_name: str, args, **overrides):
    """A learner config from robot_stack/conf/learner/<yaml_name>.yaml with the benchmark's overrides."""
    from omegaconf import OmegaConf

    from robot_stack.learn.rl_service import RLLearnerConfig

    d = OmegaConf.to_container(OmegaConf.load(CONF / f"{yaml_name}.yaml"), resolve=False)
    d.pop("torch_threads", None)
    d.update(policy_config=small_policy(args), batch_size=args.batch, tensorboard_dir=None, device="cpu",
             val_every_episode=0, val_every_steps=0, log_every_steps=args.log_every, poll_interval_s=0.2,
             prefetch_depth=2, min_episodes=1)
    d.update(overrides)
    if d.get("target_task") is not None and str(d["target_task"]).startswith("$"):
        d["target_task"] = None
    return RLLearnerConfig.from_dict(d)


def progress_printer(tag: str):
    def on_progress(m: dict) -> None:
        keys = [k for k in ("critic/q_data", "critic/cql_diff", "actor/loss", "actor/bc_mse", "actor/loss")
                if k in m]
        extra = " ".join(f"{k.split('/')[-1]}={m[k]:.3g}" for k in dict.fromkeys(keys))
        log(f"{tag} step {int(m['step'])} {m.get('perf/steps_per_s', float('nan')):.1f} upd/s {extra}")
    return on_progress


def run_offline(store, ckpt, cfg, tag):
    from robot_stack.learn.rl_service import RLLearnerService

    t0 = time.perf_counter()
    svc = RLLearnerService(store, ckpt, cfg, on_progress=progress_printer(tag))
    svc.run()
    wall = time.perf_counter() - t0
    log(f"{tag}: {svc.step} updates in {wall:.0f} s; prior {len(svc.prior_pool)} / target {len(svc.target_pool)} "
        f"transitions")
    return svc, wall


def eval_ckpt(path_or_policy, task, args, sim, tag):
    from robot_stack.learn.evaluate import evaluate

    res = evaluate(path_or_policy, task, episodes=args.eval_episodes, seed=EVAL_SEED, sim=sim)
    s = res.summary()
    log(f"{tag}: {task} success {res.successes}/{res.n} (goal dist {s['mean_goal_distance_m']:.3f} m, "
        f"{res.wall_s:.0f} s)")
    return s


def make_sim(args):
    from robot_stack.sim.env import SimConfig, TabletopSim

    return TabletopSim(SimConfig(image_size_px=args.px, cameras=("front",)))


# ------------------------------------------------------------------------------------------------ (a) PTR
def part_a(args, work: Path) -> dict:
    from robot_stack.sim.generate import generate
    from robot_stack.sim.tasks import HELD_OUT_TASKS, get_task, prior_tasks

    target = args.target_task
    assert target in HELD_OUT_TASKS, f"{target} is not held out"
    store = work / "ptr_store.zarr"
    t0 = time.perf_counter()
    prior = prior_tasks()
    rep_p = generate(store, tasks=prior, episodes=args.prior_episodes_per_task * len(prior), workers=1,
                     image_size_px=args.px, cameras=("front",), seed=0, failure_share=args.failure_share,
                     noise_std_m=args.noise_m, progress=False)
    rep_t = generate(store, tasks=[target], episodes=args.target_demos, workers=1, image_size_px=args.px,
                     cameras=("front",), seed=7, failure_share=0.0, noise_std_m=args.noise_m, progress=False)
    data = {"prior_tasks": prior, "prior_episodes": rep_p.episodes, "prior_successes": rep_p.successes,
            "prior_steps": rep_p.steps, "per_task": rep_p.per_task, "target_task": target,
            "target_episodes": rep_t.episodes, "target_successes": rep_t.successes, "target_steps": rep_t.steps,
            "gen_wall_s": time.perf_counter() - t0}
    log(f"(a) data: {rep_p.episodes} prior episodes ({rep_p.successes} successful, {rep_p.steps} steps), "
        f"{rep_t.episodes} target demos ({rep_t.successes} successful) in {data['gen_wall_s']:.0f} s")
    lang = get_task(target).language
    sim = make_sim(args)
    rows = []
    for seed in range(args.seeds):
        ck = work / f"ptr_s{seed}"
        P, F = args.pretrain_steps, args.finetune_steps
        cfg = learner_cfg("ptr", args, target_task=lang, target_switch_step=P, offline_steps=P + F,
                          checkpoint_every_steps=P, seed=seed, task=None)
        _, wall = run_offline(store, ck, cfg, f"(a) PTR seed {seed}")
        pre = eval_ckpt(ck / "v0001", args.prior_eval_task, args, sim, f"(a) PTR pre-trained seed {seed}")
        pre_t = eval_ckpt(ck / "v0001", target, args, sim, f"(a) PTR pre-trained (0-shot) seed {seed}")
        fin = eval_ckpt(ck / "v0002", target, args, sim, f"(a) PTR fine-tuned seed {seed}")
        rows += [{"method": "PTR pre-trained only (prior data, target one-hot unseen)", "seed": seed,
                  "steps": P, **pre_t, "train_wall_s": wall},
                 {"method": f"PTR pre-trained only, on prior task {args.prior_eval_task}", "seed": seed,
                  "steps": P, **pre, "train_wall_s": wall},
                 {"method": "PTR: CQL pre-train + 90/10 fine-tune", "seed": seed, "steps": P + F, **fin,
                  "train_wall_s": wall}]
        for name, yaml, algo in (("BC (bc_actor) on 10 demos", "bc_actor", "bc_actor"),
                                 ("CQL from scratch on 10 demos", "cql", "cql")):
            ckb = work / f"{algo}_s{seed}"
            cfg = learner_cfg(yaml, args, task=lang, offline_steps=F, checkpoint_every_steps=F, seed=seed)
            _, wall = run_offline(store, ckb, cfg, f"(a) {name} seed {seed}")
            rows.append({"method": name, "seed": seed, "steps": F,
                         **eval_ckpt(ckb / "v0001", target, args, sim, f"(a) {name} seed {seed}"),
                         "train_wall_s": wall})
        rows.append({"method": "scripted expert (privileged state, reference)", "seed": seed, "steps": 0,
                     **eval_expert(target, args, sim), "train_wall_s": 0.0})
    sim.close()
    return {"data": data, "rows": rows}


def eval_expert(task, args, sim):
    from robot_stack.learn.evaluate import ExpertActor, evaluate

    return evaluate(ExpertActor(), task, episodes=args.eval_episodes, seed=EVAL_SEED, sim=sim).summary()


# ------------------------------------------------------------------------------------- (b) Cal-QL vs CQL
def part_b(args, work: Path) -> dict:
    from robot_stack.learn.evaluate import PolicyActor, rollout
    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.sim.generate import generate
    from robot_stack.store import EpisodeMeta, TrajectoryStore

    task = args.online_task
    base = work / "o2o_store.zarr"
    t0 = time.perf_counter()
    rep = generate(base, tasks=[task], episodes=args.offline_episodes, workers=1, image_size_px=args.px,
                   cameras=("front",), seed=3, failure_share=args.offline_failure_share,
                   noise_std_m=args.noise_m, progress=False)
    data = {"task": task, "episodes": rep.episodes, "successes": rep.successes, "steps": rep.steps,
            "gen_wall_s": time.perf_counter() - t0}
    log(f"(b) data: {rep.episodes} episodes of {task} ({rep.successes} successful, {rep.steps} steps)")
    sim = make_sim(args)
    runs = []
    calql_defaults = {"discount": 0.99, "cql_alpha": 1.0, "cql_n_actions": 10, "cql_next_actions": True,
                      "n_backup_actions": 10}
    for seed in range(args.seeds):
        for algo in ("calql", "cql"):
            import shutil

            store_path = work / f"o2o_{algo}_s{seed}.zarr"
            shutil.rmtree(store_path, ignore_errors=True)
            shutil.copytree(base, store_path)
            # Same recipe for both (calql.yaml: reward ×10 ±5, γ .99, α 1, 10 CQL actions); CQL = no MC clipping.
            cfg = learner_cfg("calql", args, algo=algo,
                              algo_config={} if algo == "calql" else dict(calql_defaults),
                              offline_steps=args.offline_steps, online=True, online_steps=0,
                              checkpoint_every_steps=10 ** 9, seed=seed, mixing_ratio=0.5, utd_ratio=1.0)
            tag = f"(b) {algo} seed {seed}"
            svc = RLLearnerService(store_path, work / f"o2o_{algo}_s{seed}_ckpt", cfg,
                                   on_progress=progress_printer(tag))
            t_run = time.perf_counter()
            svc.start()
            target_step = args.offline_steps
            _wait(svc, target_step)
            offline_wall = time.perf_counter() - t_run
            curve = [{"online_episodes": 0, "online_transitions": 0, "step": svc.step,
                      **eval_ckpt(svc.policy, task, args, sim, f"{tag} before online")}]
            writer = TrajectoryStore.open(store_path, mode="a")
            n_trans = 0
            collected = []
            try:
                for blk in range(args.online_blocks):
                    ok = 0
                    actor = PolicyActor(svc.policy, stochastic=True)
                    block = []
                    # Collect the whole block first, then commit it: the learner starts training on the first
                    # committed episode, and the live policy must not change (or switch train/eval) mid-block.
                    for k in range(args.episodes_per_block):
                        ep_seed = ONLINE_SEED + 10_000 * seed + 100 * blk + k
                        block.append(rollout(sim, actor, task, ep_seed, record=True))
                    for res, cols in block:
                        writer.append_episode(cols, EpisodeMeta(task=sim.language, source="policy",
                                                                phase=sim.task_spec.phase, success=res.success))
                        n_trans += res.steps
                        ok += int(res.success)
                    collected.append(ok)
                    target_step = args.offline_steps + int(cfg.utd_ratio * n_trans)
                    _wait(svc, target_step)
                    curve.append({"online_episodes": (blk + 1) * args.episodes_per_block,
                                  "online_transitions": n_trans, "step": svc.step, "collected_successes": ok,
                                  **eval_ckpt(svc.policy, task, args, sim, f"{tag} after block {blk + 1}")})
            finally:
                svc.stop()
                svc.join(60)
                writer.close()
            runs.append({"algo": algo, "seed": seed, "curve": curve, "offline_wall_s": offline_wall,
                         "total_wall_s": time.perf_counter() - t_run,
                         "bound_rate_last": svc.metrics_history[-1].get("critic/bound_rate") if
                         svc.metrics_history else None})
    sim.close()
    return {"data": data, "runs": runs}


def _wait(svc, step: int, timeout_s: float = 3600) -> None:
    """Until the learner has taken `step` updates and is idle (its online loop waits for data)."""
    t0 = time.perf_counter()
    while svc.step < step or svc.phase == "offline":
        if svc._thread is not None and not svc._thread.is_alive():
            raise RuntimeError("the learner thread died (see the log above)")
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"learner at step {svc.step}, waiting for {step}")
        time.sleep(0.2)
    time.sleep(0.3)   # the step counter moves before the loop goes back to waiting: let it settle


# --------------------------------------------------------------------------------------------- report
def fmt(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def report(args, res: dict, wall_s: float) -> str:
    import torch

    L = ["# Learning evidence (bench_learning.py)", "",
         f"Machine: {platform.machine()}, torch {torch.__version__} CPU, no GPU; 2 cores shared with other "
         f"engineers' jobs while this ran; parts (a) and (b) ran as 2 parallel processes, 1 torch thread each. "
         f"Total wall time {wall_s / 60:.1f} min.", "",
         f"Command: `{args.command}`", "",
         "## Settings (all runs)", "",
         f"- Policy: `actor_critic`, encoder `resnet_tiny` (1,1,1,1 BasicBlocks, GroupNorm 4, SLE 8, "
         f"bottleneck-LN-tanh), base width {args.base_width}, latent {args.latent_dim}, MLPs (256, 256), twin Q, "
         f"one camera (`front`) at {args.px}×{args.px} px, crop-pad 4 + colour jitter, one-hot task, "
         f"proprio state fed: {args.use_state}.",
         f"- Batch {args.batch}, Adam, lrs and CQL/SAC hyper-parameters from the learner YAMLs (ptr/cql: α 10, γ .96, "
         f"4+4 CQL actions, PTR reward +10/−1 on the last 3 steps; calql: α 1, γ .99, 10+10+10 actions, reward "
         f"±5 on the last step, MC-return clip), except the overrides listed here.",
         f"- Evaluation: `robot_stack.learn.evaluate` in-process, {args.eval_episodes} episodes per point from "
         f"seeded resets {EVAL_SEED}…{EVAL_SEED + args.eval_episodes - 1} (identical for every method), "
         "deterministic actor tanh(mean), episode ends at the task's ground-truth success or its max_steps "
         "(60). `goal dist` = final xy distance of the object to its goal point (m; lower is better).",
         f"- Learner seeds: {args.seeds} ({', '.join(str(s) for s in range(args.seeds))}); data generated once.", ""]
    if "a" in res:
        a = res["a"]
        d = a["data"]
        L += ["## (a) PTR-style: multi-task CQL pre-training, then 10 demos of a held-out task", "",
              f"- Prior data (`robot_stack.sim.generate`, WidowX): {d['prior_episodes']} episodes over "
              f"{len(d['prior_tasks'])} non-held-out tasks ({', '.join(d['prior_tasks'])}), noise "
              f"{args.noise_m} m/step, failure share {args.failure_share} (heavy noise or truncated): "
              f"{d['prior_successes']} successful, {d['prior_steps']} transitions.",
              f"- Target: held-out `{d['target_task']}`, {d['target_episodes']} scripted demos "
              f"({d['target_successes']} successful, {d['target_steps']} transitions), never in the prior data.",
              f"- PTR: {args.pretrain_steps} CQL steps on 100 % prior, then {args.finetune_steps} steps at 90 % prior "
              f"/ 10 % target (the ptr.yaml schedule, shortened). Baselines: {args.finetune_steps} steps on the "
              "10 demos only (bc_actor = tanh-Gaussian NLL on the same network; CQL with the cql.yaml recipe).",
              f"- Data generation {d['gen_wall_s']:.0f} s.", "",
              "| method | seed | updates | success (task in name, else held-out) | goal dist (m) | train wall (s) |",
              "|---|---|---|---|---|---|"]
        for r in a["rows"]:
            L.append(f"| {r['method']} | {r['seed']} | {r['steps']} | {r['successes']}/{r['episodes']} "
                     f"| {fmt(r['mean_goal_distance_m'], 3)} | {r['train_wall_s']:.0f} |")
        L += ["", "Mean over seeds:", "", "| method | success rate | goal dist (m) |", "|---|---|---|"]
        for m in dict.fromkeys(r["method"] for r in a["rows"]):
            rs = [r for r in a["rows"] if r["method"] == m]
            L.append(f"| {m} | {np.mean([r['success_rate'] for r in rs]):.2f} "
                     f"| {fmt(float(np.nanmean([r['mean_goal_distance_m'] for r in rs])), 3)} |")
        L.append("")
    if "b" in res:
        b = res["b"]
        d = b["data"]
        L += ["## (b) Cal-QL vs CQL, offline → online", "",
              f"- Offline data: {d['episodes']} scripted episodes of `{d['task']}`, failure share "
              f"{args.offline_failure_share}, noise {args.noise_m} m/step: {d['successes']} successful, "
              f"{d['steps']} transitions.",
              f"- {args.offline_steps} offline updates, then {args.online_blocks} blocks of "
              f"{args.episodes_per_block} online episodes: the learner's live policy acts in the sim with sampled "
              "actions, each episode is appended to a copy of the store as source `policy`, the RL learner service "
              "(online loop, tailing the store) trains UTD 1 on 50/50 offline/online batches; evaluation waits until "
              "the learner has used the whole budget and is idle.",
              "- CQL here is the same config as Cal-QL (calql.yaml: γ .99, α 1, 10 actions, ±5 reward) without "
              "the MC-return lower bound, so the comparison isolates Cal-QL's one-line change.", "",
              "| algo | seed | before online | " + " | ".join(
                  f"after {(i + 1) * args.episodes_per_block} ep" for i in range(args.online_blocks))
              + " | online-collected successes per block | dip (min after − before) | wall (s) |",
              "|---|---|---|" + "---|" * args.online_blocks + "---|---|---|"]
        for r in b["runs"]:
            c = r["curve"]
            succ = [p["successes"] for p in c]
            cells = " | ".join(f"{p['successes']}/{p['episodes']} ({fmt(p['mean_goal_distance_m'], 3)} m)"
                               for p in c)
            coll = ", ".join(f"{p['collected_successes']}/{args.episodes_per_block}" for p in c[1:])
            dip = (min(succ[1:]) - succ[0]) / c[0]["episodes"] if len(c) > 1 else float("nan")
            L.append(f"| {r['algo']} | {r['seed']} | {cells} | {coll} | {dip:+.2f} | {r['total_wall_s']:.0f} |")
        L.append("")
        L.append("Cells: successes/episodes (mean goal distance).")
        L.append("")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="a,b")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--px", type=int, default=64)
    ap.add_argument("--base-width", type=int, default=8)
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument("--use-state", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--noise-m", type=float, default=0.01)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--log-every", type=int, default=200)
    # (a)
    ap.add_argument("--target-task", default="put_block_in_bowl")
    ap.add_argument("--prior-eval-task", default="put_cube_in_bowl")
    ap.add_argument("--prior-episodes-per-task", type=int, default=16)
    ap.add_argument("--failure-share", type=float, default=0.2)
    ap.add_argument("--target-demos", type=int, default=10)
    ap.add_argument("--pretrain-steps", type=int, default=1200)
    ap.add_argument("--finetune-steps", type=int, default=800)
    # (b)
    ap.add_argument("--online-task", default="put_cube_in_bowl")
    ap.add_argument("--offline-episodes", type=int, default=40)
    ap.add_argument("--offline-failure-share", type=float, default=0.5)
    ap.add_argument("--offline-steps", type=int, default=600)
    ap.add_argument("--online-blocks", type=int, default=3)
    ap.add_argument("--episodes-per-block", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per part")
    ap.add_argument("--workdir", default="/tmp/bench_learning")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning.md"))
    ap.add_argument("--json", default=None, help="(internal) run the parts in this process, write JSON here")
    ap.add_argument("--sequential", action="store_true", help="run the parts one after the other, in-process")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite --out from the parts' JSON already in --workdir (same knobs as the run)")
    args = ap.parse_args()
    args.command = "python benchmarks/bench_learning.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    parts = [p for p in args.parts.split(",") if p]
    work = Path(args.workdir)
    t0 = time.perf_counter()
    if args.report_only:
        res = {}
        for p in parts:
            if (work / f"{p}.json").exists():
                res.update(json.loads((work / f"{p}.json").read_text()))
    elif args.json is not None or args.sequential or len(parts) == 1:
        import torch

        torch.set_num_threads(args.threads)
        res = {}
        for p in parts:
            pw = work / p
            if pw.exists():
                import shutil

                shutil.rmtree(pw)
            pw.mkdir(parents=True)
            res[p] = {"a": part_a, "b": part_b}[p](args, pw)
        if args.json is not None:
            for v in res.values():
                v["wall_s"] = time.perf_counter() - t0
            Path(args.json).write_text(json.dumps(res, indent=1, default=float))
            return
    else:
        work.mkdir(parents=True, exist_ok=True)
        argv = [a for a in sys.argv[1:]]
        procs = []
        for p in parts:
            cmd = [sys.executable, __file__, *argv, "--parts", p, "--json", str(work / f"{p}.json")]
            procs.append((p, subprocess.Popen(cmd)))
        for p, proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"part {p} failed (exit {proc.returncode})")
        res = {}
        for p in parts:
            res.update(json.loads((work / f"{p}.json").read_text()))
    wall = max([time.perf_counter() - t0] + [v.get("wall_s", 0.0) for v in res.values()])
    text = report(args, res, wall)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
