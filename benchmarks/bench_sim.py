"""Sim benchmark (`make bench`): speed of both MuJoCo arms, scripted-expert success per task per arm, and the
time to generate 200 episodes of multi-task prior data.

Writes benchmarks/results/sim.md. Numbers depend on the machine; the file says which one.

Usage: python benchmarks/bench_sim.py [--seeds 50] [--generate-episodes 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_stack.sim import ScriptedExpert, SimConfig, TabletopSim  # noqa: E402
from robot_stack.sim.tasks import HELD_OUT_TASKS, TASKS  # noqa: E402

ARMS = ("widowx", "panda")

OUT = Path(__file__).parent / "results" / "sim.md"


def rate_hz(fn, n: int) -> float:
    fn()  # warm-up: creates the renderer / GL context
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def speed_rows() -> list[str]:
    rows = []
    hold = np.array([0, 0, 0, 0, 0, 0, 1.0])
    for arm in ARMS:
        for size in (128, 256):
            sim = TabletopSim(SimConfig(arm=arm, image_size_px=size))
            steps = rate_hz(lambda sim=sim: sim.apply_ee_delta(hold), 100)
            one = rate_hz(lambda sim=sim: sim.render("front"), 60)
            step1 = rate_hz(lambda sim=sim: (sim.apply_ee_delta(hold), sim.render("front")), 40)
            step2 = rate_hz(lambda sim=sim: (sim.apply_ee_delta(hold), sim.render("front"), sim.render("wrist")), 40)
            rt = step2 / sim.config.control_hz
            rows.append(f"| {arm} | {size}² | {steps:.0f} | {one:.0f} | {step1:.0f} | {step2:.0f} | {rt:.0f}x |")
            sim.close()
            print(f"[bench] {arm} {size}px: {steps:.0f} steps/s, {one:.0f} frames/s, step+1 cam {step1:.0f} Hz, "
                  f"step+2 cams {step2:.0f} Hz", flush=True)
    return rows


def expert_rows(seeds: int) -> list[str]:
    rows = []
    for arm in ARMS:
        sim = TabletopSim(SimConfig(arm=arm, image_size_px=64, cameras=("front",)))
        for task in TASKS.names():
            sim.set_task(task)
            for noise in (0.0, 0.01):
                ok, lengths = 0, []
                for seed in range(seeds):
                    sim.reset(seed=seed)
                    ex = ScriptedExpert(task, noise_std=noise, seed=seed)
                    n = 0
                    while not ex.done and n < sim.max_episode_steps:
                        sim.apply_ee_delta(ex.act(sim))
                        n += 1
                    ok += sim.is_success()
                    lengths.append(n)
                tag = " (held out)" if task in HELD_OUT_TASKS else ""
                rows.append(f"| {arm} | {task}{tag} | {noise:.2f} | {seeds} | {100 * ok / seeds:.0f}% | "
                            f"{np.mean(lengths):.1f} |")
                print(f"[bench] expert {arm} {task} noise {noise}: {ok}/{seeds}", flush=True)
        sim.close()
    return rows


def generate_rows(episodes: int, workers: int) -> list[str]:
    from robot_stack.sim.generate import generate

    rows = []
    for arm in ARMS:
        with tempfile.TemporaryDirectory() as tmp:
            r = generate(f"{tmp}/prior.zarr", arm=arm, episodes=episodes, noise_std_m=0.01, failure_share=0.2,
                         workers=workers, image_size_px=128, cameras=("front", "wrist"), progress=False)
        rows.append(f"| {arm} | {r.episodes} | {len(r.per_task)} | {workers} | {r.steps} | "
                    f"{100 * r.successes / r.episodes:.0f}% | {r.wall_s:.0f} s | {r.steps / r.wall_s:.0f} |")
        print(f"[bench] generate {arm}: {r.episodes} episodes, {r.steps} steps in {r.wall_s:.1f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--generate-episodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    speed = speed_rows()
    expert = expert_rows(args.seeds)
    gen = generate_rows(args.generate_episodes, args.workers)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join([
        "# Sim benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"MUJOCO_GL={os.environ['MUJOCO_GL']}, measured {time.strftime('%Y-%m-%d')} by `python benchmarks/bench_sim.py`.",
        "",
        "## Speed (one control step = 0.2 s of physics at 5 Hz)",
        "",
        "| arm | image size | control steps/s | frames/s (1 camera) | step + 1 camera, Hz | step + 2 cameras, Hz "
        "| vs real time (2 cameras) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *speed,
        "",
        "## Scripted experts (noise = Gaussian std on each translation step, metres)",
        "",
        "| arm | task | noise | seeds | success | mean steps |",
        "| --- | --- | --- | --- | --- | --- |",
        *expert,
        "",
        f"## Prior data: `robot-stack sim generate` ({args.generate_episodes} episodes, all non-held-out tasks, "
        "noise 0.01, 20 % failure share, 2 x 128² cameras)",
        "",
        "| arm | episodes | tasks | workers | steps | success | wall time | steps/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *gen,
        "",
    ]))
    print(f"[bench] wrote {OUT}")


if __name__ == "__main__":
    main()
