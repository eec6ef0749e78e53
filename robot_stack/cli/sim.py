"""`robot-stack sim`: the simulation suite from the command line.

    robot-stack sim tasks                                   list tasks (language, phase, pair, held out)
    robot-stack sim generate --arm widowx --tasks a,b --episodes N --noise 0.01 --store PATH --workers 2
                             [--failure-share 0.2] [--image-size 128] [--cameras front,wrist] [--seed 0]
                             [--distractors 0] [--color-jitter 0] [--light-jitter 0] [--camera-jitter-m 0]
                             [--environment-state]   (--cameras none: no images, state-only, nothing rendered)
    robot-stack sim view --arm panda --task put_cube_in_bowl [--out sim_view.png] [--size 128] [--frames 5]
"""

from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="robot-stack sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("tasks", help="list the sim tasks")
    g = sub.add_parser("generate", help="write scripted multi-task prior data into a trajectory store")
    g.add_argument("--arm", default="widowx", choices=["widowx", "panda"])
    g.add_argument("--tasks", default="", help="comma-separated task names (default: all but the held-out tasks)")
    g.add_argument("--episodes", type=int, default=20)
    g.add_argument("--noise", type=float, default=0.01, help="expert translation noise std per step (m)")
    g.add_argument("--failure-share", type=float, default=0.2,
                   help="share of episodes with heavy noise or a truncated script (recorded with their real success)")
    g.add_argument("--store", required=True, help="store path (created, or appended to if compatible)")
    g.add_argument("--workers", type=int, default=2)
    g.add_argument("--image-size", type=int, default=128)
    g.add_argument("--cameras", default="front,wrist",
                   help="comma-separated sim cameras; 'none' or '' = no images (state-only, nothing rendered)")
    g.add_argument("--environment-state", action="store_true",
                   help="also record observation.environment_state (privileged object poses, 16 floats)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--distractors", type=int, default=0)
    g.add_argument("--color-jitter", type=float, default=0.0)
    g.add_argument("--light-jitter", type=float, default=0.0)
    g.add_argument("--camera-jitter-m", type=float, default=0.0)
    v = sub.add_parser("view", help="montage PNG (front + wrist over the expert's episode)")
    v.add_argument("--arm", default="widowx", choices=["widowx", "panda"])
    v.add_argument("--task", default="put_cube_in_bowl")
    v.add_argument("--out", default="sim_view.png")
    v.add_argument("--size", type=int, default=128)
    v.add_argument("--frames", type=int, default=5)
    v.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str]) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = _parser().parse_args(argv)
    from robot_stack.registry import UnknownNameError
    from robot_stack.sim.panda_model import PandaAssetsMissing

    try:
        if args.cmd == "tasks":
            from robot_stack.sim.tasks import all_tasks

            for t in all_tasks():
                tag = "HELD OUT" if t.held_out else f"pair: {t.reverse}" if t.reverse else ""
                print(f"{t.name:24s} {t.phase:8s} {t.language!r:42s} {tag}")
            return 0
        if args.cmd == "generate":
            from robot_stack.sim.generate import generate

            tasks = [t for t in args.tasks.split(",") if t]
            cameras = () if args.cameras.strip().lower() == "none" else tuple(c for c in args.cameras.split(",") if c)
            sim_kwargs = {"n_distractors": args.distractors, "color_jitter": args.color_jitter,
                          "light_jitter": args.light_jitter, "camera_jitter_m": args.camera_jitter_m}
            r = generate(args.store, arm=args.arm, tasks=tasks, episodes=args.episodes, noise_std_m=args.noise,
                         failure_share=args.failure_share, workers=args.workers, image_size_px=args.image_size,
                         cameras=cameras, seed=args.seed, sim_kwargs=sim_kwargs,
                         environment_state=args.environment_state)
            print(f"[sim] {r.episodes} episodes ({r.successes} successful, {r.steps} steps) in {r.wall_s:.1f} s "
                  f"-> {r.store}")
            for name, (ok, n) in r.per_task.items():
                print(f"[sim]   {name:24s} {ok}/{n}")
            return 0
        from robot_stack.sim.montage import expert_montage, save_png

        img = expert_montage(args.arm, args.task, size_px=args.size, n_frames=args.frames, seed=args.seed)
        save_png(img, args.out)
        print(f"[sim] wrote {args.out} ({img.shape[1]}x{img.shape[0]} px)")
        return 0
    except (UnknownNameError, ValueError, PandaAssetsMissing) as e:
        print(f"[sim] {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
