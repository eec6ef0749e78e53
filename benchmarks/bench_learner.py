"""Learner throughput: CQL/Cal-QL updates per second at batch 256 for the 128×128 ResNet-18 actor + critic
(separate encoders, twin Q, PTR/Cal-QL settings) on this machine; writes benchmarks/results/learner.md.

    python benchmarks/bench_learner.py [--steps 2] [--threads 2] [--batch 256] [--arch resnet18]

Synthetic batches (random uint8 images, physical actions): the update cost does not depend on content.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from robot_stack.algos.base import make_algo
from robot_stack.policies.base import make_policy
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import image_key


def synthetic_batch(b: int, px: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for prefix in ("", "next."):
        out[prefix + image_key("front")] = torch.from_numpy(rng.integers(0, 256, (b, px, px, 3), dtype=np.uint8))
        out[prefix + "observation.state"] = torch.from_numpy(rng.normal(size=(b, 14)).astype(np.float32))
    a = rng.normal(0, 0.01, (b, 7)).astype(np.float32)
    a[:, 6] = rng.integers(0, 2, b)
    out.update({"action": torch.from_numpy(a), "reward": torch.full((b,), -1.0), "mask": torch.ones(b),
                "mc_return": torch.full((b,), -10.0), "task_index": torch.zeros(b, dtype=torch.long)})
    return out


def bench(algo: str, arch: str, batch: int, steps: int, px: int) -> dict:
    rng = np.random.default_rng(0)
    acts = rng.normal(0, 0.01, (500, 7))
    acts[:, 6] = rng.integers(0, 2, 500)
    norm = Normalizer.fit(acts, rng.normal(size=(500, 14)))
    policy = make_policy("actor_critic", {"arch": arch, "cameras": ["front"], "image_size_px": px,
                                          "tasks": ["t"], "conditioning": "onehot"}, norm)
    n_params = sum(p.numel() for p in policy.parameters())
    algorithm = make_algo(algo, None, policy)
    b = synthetic_batch(batch, px, rng)
    algorithm.update(b)  # warm-up (allocator, first-call overheads)
    t = time.perf_counter()
    for _ in range(steps):
        algorithm.update(b)
    dt = (time.perf_counter() - t) / steps
    return {"algo": algo, "arch": arch, "batch": batch, "px": px, "s_per_update": dt, "updates_per_s": 1 / dt,
            "samples_per_s": batch / dt, "params_M": n_params / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--algos", default="cql,calql")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "learner.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [bench(a, args.arch, args.batch, args.steps, args.px) for a in args.algos.split(",")]
    lines = ["# Learner throughput (bench_learner.py)", "",
             f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{args.threads} torch threads, device cpu (2 cores shared with other jobs while measured). "
             f"Seed 0; {args.steps} timed updates after 1 warm-up; synthetic batches; one 128×128 camera.", "",
             "| algo | encoder | batch | px | params (M) | s / update | updates/s | samples/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['algo']} | {r['arch']} (GN4 + SLE8, separate actor/critic) | {r['batch']} | {r['px']} | "
                     f"{r['params_M']:.1f} | {r['s_per_update']:.2f} | {r['updates_per_s']:.3f} | "
                     f"{r['samples_per_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
