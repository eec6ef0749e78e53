"""`robot-stack store ...`: inspect and curate a trajectory store (DESIGN.md §3).

    robot-stack store info STORE                   schema, versions, counts, exclusions, split rule
    robot-stack store ls STORE [--all]             one line per episode (excluded ones with --all)
    robot-stack store show STORE EPISODE           metadata, notes, shapes and per-key ranges of one episode
    robot-stack store stats STORE [KEY ...]        mean/std/min/max/q01/q99 of float keys (non-excluded episodes)
    robot-stack store validate STORE               decode every committed step; report an uncommitted tail
    robot-stack store exclude STORE EPISODE ...    tombstone episodes (undo: include)
    robot-stack store include STORE EPISODE ...
    robot-stack store label STORE success|failure|recorded EPISODE ...   a person's verdict replaces the recorded
                                                   success label (practice's judge, a demo's); `recorded` undoes it
    robot-stack store split STORE --val FRACTION [--seed N]   store the train/validation split rule
    robot-stack store compact STORE                rewrite without excluded episodes (atomic swap)
    robot-stack store merge DST SRC [SRC ...]      append the episodes of SRC stores (schemas must match)
    robot-stack store export STORE FORMAT OUT      via robot_stack.store.formats (e.g. lerobot, hdf5)
    robot-stack store import STORE FORMAT SRC
Exit status: 0 ok, 1 validation found problems, 2 an operator error (message names the fix).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

USAGE = __doc__


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ep", file=sys.stderr, disable=None)


def _done_of_total(bar):
    """Adapt a tqdm bar to the formats' progress(done, total) callback (absolute counts, total may grow)."""
    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return progress


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robot-stack store", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("info", "validate", "compact"):
        sub.add_parser(name).add_argument("store")
    a = sub.add_parser("ls")
    a.add_argument("store")
    a.add_argument("--all", action="store_true", help="also list excluded episodes")
    a = sub.add_parser("show")
    a.add_argument("store")
    a.add_argument("episode", type=int)
    a = sub.add_parser("stats")
    a.add_argument("store")
    a.add_argument("keys", nargs="*")
    for name in ("exclude", "include"):
        a = sub.add_parser(name)
        a.add_argument("store")
        a.add_argument("episodes", type=int, nargs="+")
    a = sub.add_parser("label")
    a.add_argument("store")
    a.add_argument("verdict", choices=("success", "failure", "recorded"))
    a.add_argument("episodes", type=int, nargs="+")
    a = sub.add_parser("split")
    a.add_argument("store")
    a.add_argument("--val", type=float, required=True, help="fraction of episodes for validation, e.g. 0.1")
    a.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("merge")
    a.add_argument("dst")
    a.add_argument("srcs", nargs="+")
    a.add_argument("--include-excluded", action="store_true")
    a = sub.add_parser("export")
    a.add_argument("store")
    a.add_argument("format")
    a.add_argument("out")
    a.add_argument("--episodes", type=int, nargs="*")
    a = sub.add_parser("import")
    a.add_argument("store")
    a.add_argument("format")
    a.add_argument("src")
    return p


def main(argv: list[str] | None = None) -> int:
    from robot_stack.cli.subcommands import run_subcommands
    from robot_stack.store.schema import StoreError

    return run_subcommands(argv, USAGE, _parser, _COMMANDS,
                           (StoreError, KeyError, IndexError, ValueError, FileNotFoundError), "store")


def _open(path, mode="r"):
    from robot_stack.store import TrajectoryStore

    return TrajectoryStore.open(path, mode=mode)


def _info(args) -> int:
    with _open(args.store) as s:
        print(json.dumps(s.info(), indent=1, default=str))
    return 0


def _ls(args) -> int:
    with _open(args.store) as s:
        ex = s.excluded_episodes()
        print(f"{'ep':>5} {'steps':>6} {'split':5} {'source':8} {'phase':8} {'success':7}  task")
        for i in range(s.n_episodes):
            if i in ex and not args.all:
                continue
            m, sl = s.episode_meta(i), s.episode_slice(i)
            flag = " (excluded)" if i in ex else ""
            print(f"{i:>5} {sl.stop - sl.start:>6} {s.split_of(i):5} {m.source:8} {m.phase or '-':8} "
                  f"{str(m.success):7}  {m.task}{flag}")
        print(f"{s.n_episodes} episodes, {s.n_steps} steps, {len(ex)} excluded")
    return 0


def _show(args) -> int:
    with _open(args.store) as s:
        sl = s.episode_slice(args.episode)
        print(json.dumps({"episode": args.episode % s.n_episodes, "steps": [sl.start, sl.stop],
                          "excluded": (args.episode % s.n_episodes) in s.excluded_episodes(),
                          "split": s.split_of(args.episode), **s.episode_meta(args.episode).to_json()}, indent=1))
        for k, v in s.get_episode(args.episode).items():
            rng = f"min {v.min():.4g} max {v.max():.4g}" if v.size else "empty"
            print(f"  {k:40s} {str(v.dtype):8s} {str(v.shape):22s} {rng}")
    return 0


def _stats(args) -> int:
    from robot_stack.store.stats import stats_keys

    with _open(args.store) as s:
        keys = args.keys or stats_keys(s.schema.features)
        for k in keys:
            st = s.stats(k)
            print(f"{k} (count {int(st['count'])})")
            for name in ("mean", "std", "min", "max", "q01", "q99"):
                print(f"  {name:4s} {np.array2string(np.atleast_1d(st[name]), precision=4, max_line_width=200)}")
    return 0


def _validate(args) -> int:
    import zarr

    problems: list[str] = []
    with _open(args.store) as s:
        g = zarr.open_group(str(s.path), mode="r")
        for k in s.schema.features:
            n = g[f"data/{k}"].shape[0]
            if n > s.n_steps:
                problems.append(f"{k}: {n - s.n_steps} uncommitted steps past the end (a crashed writer); "
                                "opening the store in mode 'a' (the recorder, or `compact`) cuts them back")
        with _bar(s.n_episodes, "validate") as bar:
            for i in range(s.n_episodes):
                try:
                    ep = s.get_episode(i)
                except Exception as e:  # noqa: BLE001 - report every unreadable episode, not just the first
                    problems.append(f"episode {i}: cannot be decoded ({e!r})")
                    bar.update(1)
                    continue
                for k, v in ep.items():
                    if v.dtype.kind == "f" and not np.isfinite(v).all():
                        problems.append(f"episode {i}: {k} has NaN/inf (exclude it: robot-stack store exclude)")
                bar.update(1)
    for p in problems:
        print(f"PROBLEM {p}")
    print(f"{'ok' if not problems else 'problems found'}: {s.n_episodes} episodes, {s.n_steps} steps")
    return 1 if problems else 0


def _exclude(args, undo: bool = False) -> int:
    with _open(args.store) as s:
        for i in args.episodes:
            s.episode_slice(i)  # range check with a clear message before editing
        s.exclude(args.episodes, undo=undo)
        print(f"{'included' if undo else 'excluded'} {args.episodes}; now {len(s.excluded_episodes())} excluded "
              f"(`robot-stack store compact {args.store}` removes excluded episodes from disk)")
    return 0


def _label(args) -> int:
    with _open(args.store) as s:
        for i in args.episodes:
            s.episode_slice(i)  # range check with a clear message before editing
        verdict = {"success": True, "failure": False, "recorded": None}[args.verdict]
        s.set_success(args.episodes, verdict, by="robot-stack store label")
        for i in args.episodes:
            print(f"episode {i}: success {s.episode_meta(i).success} (recorded {s.recorded_meta(i).success})")
        print(f"{len(s.corrected_episodes())} corrected label(s) in {args.store}; the success classifier and the "
              "learner read them from now on")
    return 0


def _split(args) -> int:
    with _open(args.store) as s:
        s.set_split(args.val, seed=args.seed)
        print(f"split rule seed={args.seed} val_fraction={args.val}: "
              f"{len(s.episodes(split='train'))} train, {len(s.episodes(split='val'))} val episodes")
    return 0


def _compact(args) -> int:
    from robot_stack.store.ops import compact

    with _open(args.store) as s:
        n = len(s.episodes())
    with _bar(n, "compact") as bar:
        r = compact(args.store, progress=bar.update)
    print(json.dumps(r))
    return 0


def _merge(args) -> int:
    from robot_stack.store.ops import merge

    total = 0
    for p in args.srcs:
        with _open(p) as s:
            total += len(s.episodes(include_excluded=args.include_excluded))
    with _bar(total, "merge") as bar:
        r = merge(args.dst, args.srcs, progress=bar.update, include_excluded=args.include_excluded)
    print(json.dumps(r))
    return 0


def _formats():
    try:
        from robot_stack.store import formats
    except ImportError as e:
        raise StoreFormatsMissing(f"import/export formats are not available in this install ({e}); "
                                  "update robot_stack (robot_stack/store/formats)") from e
    return formats


def _export(args) -> int:
    formats = _formats()
    with _open(args.store) as s:
        eps = args.episodes if args.episodes else s.episodes()
        with _bar(len(eps), f"export {args.format}") as bar:
            formats.export_store(s, args.format, args.out, episodes=eps, progress=_done_of_total(bar))
    print(f"exported {len(eps)} episodes to {args.out}")
    return 0


def _import(args) -> int:
    formats = _formats()
    with _bar(0, f"import {args.format}") as bar:
        r = formats.import_into(args.store, args.format, args.src, progress=_done_of_total(bar))
    print(f"imported into {args.store}: {r}")
    return 0


class StoreFormatsMissing(ValueError):
    pass


_COMMANDS = {"info": _info, "ls": _ls, "show": _show, "stats": _stats, "validate": _validate,
             "exclude": _exclude, "include": lambda a: _exclude(a, undo=True), "label": _label, "split": _split,
             "compact": _compact, "merge": _merge, "export": _export, "import": _import}
