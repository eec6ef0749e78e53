"""`robot-stack classifier ...`: train and check practice's success classifier on a real rig's store.

    robot-stack classifier train STORE OUT --tasks FORWARD BACKWARD [--steps 1500] [--camera front]
                                 [--backend cnn|vlm] [--config JSON] [--init CLASSIFIER] [--practice corrected|all|none]
                                 [--no-start-positives] [--seed 0]
        Train on the store's labelled frames (a person's corrections, `robot-stack store label`, replace recorded
        labels) and save to OUT, which `practice.judge=OUT` then loads. --init fine-tunes a saved classifier instead
        (after a review: label the attempts it got wrong, then train --init the old one). Which practice attempts
        it learns from (--practice): `corrected` (default) only those a person corrected, since learning from the
        judge's own unreviewed labels teaches it its mistakes back (benchmarks/results/practice.md); `all`; `none`.
        With two tasks, a forward and its reverse, the first frames of non-practice episodes are also positives of
        the other task (the start of one is the goal of the other); --no-start-positives turns that off.
    robot-stack classifier eval CLASSIFIER STORE [--source practice] [--episodes N ...]
        FP/FN per task on each episode's final frame, against the sim's truth where the store has it, else against
        the (corrected) labels.
Exit status: 0 ok, 2 an operator error (the message names the fix).
"""

from __future__ import annotations

import argparse
import json
import time

USAGE = __doc__
PRACTICE_CHOICES = ("corrected", "all", "none")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robot-stack classifier", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train")
    a.add_argument("store")
    a.add_argument("out")
    a.add_argument("--tasks", nargs="+", required=True, help="instructions, as the store's episodes name them")
    a.add_argument("--steps", type=int, default=1500)
    a.add_argument("--camera", default=None, help="the store camera to judge from (default: the backend's, front)")
    a.add_argument("--backend", default="cnn", help="cnn (CPU default) or vlm (a local Hugging Face directory)")
    a.add_argument("--config", default="{}", help='backend config as JSON, e.g. \'{"image_size_px": 64}\' or '
                                                  '\'{"pretrained_dir": "data/models/siglip"}\'')
    a.add_argument("--init", default=None, help="a saved classifier to fine-tune (same tasks)")
    a.add_argument("--practice", choices=PRACTICE_CHOICES, default="corrected",
                   help="which practice attempts to learn from (default: those a person corrected)")
    a.add_argument("--no-start-positives", action="store_true")
    a.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("eval")
    a.add_argument("classifier")
    a.add_argument("store")
    a.add_argument("--source", default=None, help="only episodes of this source (e.g. practice)")
    a.add_argument("--episodes", type=int, nargs="*")
    return p


def training_episodes(store, practice: str) -> list[int]:
    """Every non-practice episode, plus the practice attempts `practice` asks for."""
    from robot_stack.practice.classifier.review import RetrainOnReview

    if practice not in PRACTICE_CHOICES:
        raise ValueError(f"practice must be one of {PRACTICE_CHOICES}, got {practice!r}")
    if practice == "all":
        return store.episodes()
    # The in-process review's rule, with the store's corrections as the attempts a person has seen.
    return RetrainOnReview.training_episodes(store, set(store.corrected_episodes()) if practice == "corrected" else set())


def _train(args) -> int:
    from robot_stack.practice.classifier import load_classifier, train_classifier
    from robot_stack.store import TrajectoryStore

    config = json.loads(args.config)
    if not isinstance(config, dict):
        raise ValueError(f"--config must be a JSON object, got {args.config!r}")
    if args.camera:
        config["camera"] = args.camera
    tasks = list(args.tasks)
    reverse = None
    if not args.no_start_positives:
        if len(tasks) != 2:
            raise ValueError(f"start positives need a forward task and its reverse (2 --tasks), got {len(tasks)}; "
                             "pass --no-start-positives to train on final frames only")
        reverse = {tasks[0]: tasks[1], tasks[1]: tasks[0]}
    init = load_classifier(args.init) if args.init else None
    with TrajectoryStore.open(args.store, mode="r") as s:
        known = {s.episode_meta(i).task for i in s.episodes()}
        missing = [t for t in tasks if t not in known]
        if missing:
            raise ValueError(f"no episode of task(s) {missing} in {args.store}; its tasks: {sorted(known)}")
        episodes = training_episodes(s, args.practice)
        n_practice = sum(s.episode_meta(i).source == "practice" for i in episodes)
        print(f"[classifier train] {len(episodes)} episodes ({n_practice} practice attempts, --practice "
              f"{args.practice}; {len(s.corrected_episodes())} labels corrected in the store), {args.steps} steps"
              + (f", fine-tuning {args.init}" if init else ""), flush=True)
        t0 = time.perf_counter()
        clf = train_classifier(s, tasks, backend=args.backend, config=config, steps=args.steps, seed=args.seed,
                               episodes=episodes, init=init, reverse=reverse,
                               progress=lambda m: print(f"[classifier train] step {m['step']}/{args.steps} loss "
                                                        f"{m['loss']:.3f}", flush=True),
                               progress_every=max(1, args.steps // 10))
        path = clf.save(args.out, trained_steps=args.steps,
                        notes={"store": str(s.path), "episodes": len(episodes), "practice": args.practice,
                               "init": args.init})
    print(f"[classifier train] saved {path} ({time.perf_counter() - t0:.0f} s); use it with practice.judge={path}")
    return 0


def _eval(args) -> int:
    from robot_stack.practice.classifier import evaluate_classifier, load_classifier
    from robot_stack.store import TrajectoryStore

    clf = load_classifier(args.classifier)
    with TrajectoryStore.open(args.store, mode="r") as s:
        episodes = args.episodes if args.episodes else (s.episodes(source=args.source) if args.source else None)
        report = evaluate_classifier(clf, s, episodes)
    if not report:
        raise ValueError(f"no episode of the classifier's tasks {list(clf.tasks)} in {args.store}"
                         + (f" with source {args.source!r}" if args.source else ""))
    for task, r in report.items():
        rate = lambda x: "n/a" if x is None else f"{100 * x:.0f} %"  # noqa: E731
        if r["n_pos"] + r["n_neg"] == 0:
            print(f"{task}: no labelled episodes")
            continue
        print(f"{task}: FP {rate(r['fp_rate'])} ({r['fp']} of {r['n_neg']} failures), FN {rate(r['fn_rate'])} "
              f"({r['fn']} of {r['n_pos']} successes), accuracy {rate(r['accuracy'])}")
    print(json.dumps(report))
    return 0


_COMMANDS = {"train": _train, "eval": _eval}


def main(argv: list[str] | None = None) -> int:
    from robot_stack.cli.subcommands import run_subcommands
    from robot_stack.practice.classifier import ClassifierError
    from robot_stack.store.schema import StoreError

    return run_subcommands(argv, USAGE, _parser, _COMMANDS,
                           (ClassifierError, StoreError, KeyError, ValueError, FileNotFoundError), "classifier")
