"""Sim benchmark (`make bench`): speed of the MuJoCo WidowX and success of the scripted experts.

Writes benchmarks/results/sim.md. Numbers depend on the machine; the file says which one.

Usage: python benchmarks/bench_sim.py [--seeds 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_stack.sim import ScriptedExpert, SimConfig, TabletopSim  # noqa: E402

OUT = Path(__file__).parent / "results" / "sim.md"


def rate_hz(fn, n: int) -> float:
    fn()  # warm-up: creates the renderer / GL context
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def speed_rows() -> list[str]:
    rows = []
    for size in (128, 256):
        sim = TabletopSim(SimConfig(image_size_px=size))
        hold = np.array([0, 0, 0, 0, 0, 0, 1.0])
        steps = rate_hz(lambda: sim.apply_ee_delta(hold), 100)
        one = rate_hz(lambda: sim.render("front"), 60)
        two = rate_hz(lambda: (sim.apply_ee_delta(hold), sim.render("front"), sim.render("wrist")), 60)
        rt = two / sim.config.control_hz
        rows.append(f"| {size}² | {steps:.0f} | {one:.0f} | {two:.0f} | {rt:.0f}x |")
        sim.close()
        print(f"[bench] {size}px: {steps:.0f} steps/s, {one:.0f} frames/s, step+2 cams {two:.0f} Hz", flush=True)
    return rows


def expert_rows(seeds: int) -> list[str]:
    rows = []
    sim = TabletopSim(SimConfig(image_size_px=64, cameras=("front",)))
    for task in ("put_cube_in_bowl", "take_cube_out_of_bowl"):
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
            rows.append(f"| {task} | {noise:.2f} | {seeds} | {100 * ok / seeds:.0f}% | {np.mean(lengths):.1f} |")
            print(f"[bench] expert {task} noise {noise}: {ok}/{seeds}", flush=True)
    sim.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    args = ap.parse_args()
    speed = speed_rows()
    expert = expert_rows(args.seeds)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join([
        "# Sim benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, MUJOCO_GL={os.environ['MUJOCO_GL']}, "
        f"measured {time.strftime('%Y-%m-%d')} by `python benchmarks/bench_sim.py`.",
        "",
        "## Speed (one control step = 0.2 s of physics at 5 Hz)",
        "",
        "| image size | control steps/s | frames/s (1 camera) | step + 2 cameras, Hz | vs real time |",
        "| --- | --- | --- | --- | --- |",
        *speed,
        "",
        "## Scripted experts (noise = Gaussian std on each translation step, metres)",
        "",
        "| task | noise | seeds | success | mean steps |",
        "| --- | --- | --- | --- | --- |",
        *expert,
        "",
    ]))
    print(f"[bench] wrote {OUT}")


if __name__ == "__main__":
    main()
