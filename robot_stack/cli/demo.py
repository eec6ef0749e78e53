"""`robot-stack demo`: the whole loop on the simulated WidowX 250s, end to end, with progress.

By default a reset-free practice session (demo.loop=practice, run_practice_demo). demo.loop=bc:
    supervisor ─► sim_rig, recorder, learner, inference   (the sim_demo profile, real rclpy processes)
    1. collect   scripted expert drives the arm ─► recorder ─► zarr store (committed episodes)
    2. train     learner tails the store, trains BC, writes checkpoint v1 ─► policy_update
    3. deploy    inference node verifies + swaps v1 between ticks ─► policy drives the arm (recorded too)
                 (the learner keeps training; v2 is swapped in while the policy runs)
    4. summary   episodes, scripted vs learned success, versions swapped, where things are

Usage: robot-stack demo [demo.practice.attempts=240] [demo.obs=state|pixels] [demo.practice.learner=rlpd_state] ...
         the default: a reset-free practice session (robot_stack/practice/experiment.py): scripted forward +
         backward demos -> success classifier -> learner -> practice attempts -> forward/backward success before vs
         after (ground truth, seeded resets), interventions per 100 attempts, classifier FP/FN, missed ticks,
         practice.png
       robot-stack demo demo.loop=bc [demo.episodes=20] [demo.eval_episodes=10] [task=...] [any hydra override]
         the collect -> train -> deploy loop over the ROS graph (below)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from robot_stack.cli.episodes import run_episode


def _line(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def run_demo(overrides: list[str]) -> int:
    from robot_stack.cli.supervisor import NodeDiedError, Supervisor
    from robot_stack.conf import load_config
    from robot_stack.conf.profiles import load_profile

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path("data/demo") / stamp
    base = [f"store={run_dir}/store.zarr", f"checkpoints={run_dir}/checkpoints"]
    cfg = load_config([*base, *overrides])
    loop = str(cfg.demo.get("loop", "bc"))
    if loop == "practice":
        return run_practice_demo(cfg, run_dir)
    if loop != "bc":
        _line(f"FAILED: demo.loop must be 'bc' (collect -> train -> deploy over ROS) or 'practice' (a reset-free "
              f"practice session), got {loop!r}")
        return 2
    node_overrides = [*base, *overrides, f"learner.min_episodes={cfg.demo.episodes}"]
    profile = load_profile("sim_demo", node_overrides)
    t_start = time.monotonic()
    _line(f"run dir {run_dir}; task '{cfg.task.language}'; {cfg.demo.episodes} demonstrations, "
          f"{cfg.demo.eval_episodes} policy episodes")
    run_dir.mkdir(parents=True, exist_ok=True)
    from robot_stack.ros.rig_client import RigClient

    with Supervisor(profile, log_dir=run_dir / "logs") as sup:
        client = RigClient(str(cfg.rig.namespace))
        try:
            _line("starting nodes: " + ", ".join(n.name for n in profile.nodes))
            client.wait_ready(["sim/reset", "sim/evaluate", "teleop/enable", "recorder/start", "recorder/stop",
                               "inference/enable"], timeout_s=float(cfg.demo.node_start_timeout_s), check=sup.check)
            max_steps = int(cfg.task.max_steps)
            scripted = []
            for i in range(int(cfg.demo.episodes)):
                r = run_episode(client, "expert", max_steps, check=sup.check)
                scripted.append(r)
                _line(f"collect {i + 1}/{cfg.demo.episodes}: {'success' if r.success else 'FAIL   '} "
                      f"{r.steps:3d} steps {r.duration_s:4.1f} s -> episode {r.episode} "
                      f"| success so far {sum(x.success for x in scripted)}/{len(scripted)}")
            _line(f"waiting for the learner's first checkpoint (trains once {cfg.demo.episodes} episodes are "
                  f"committed; timeout {cfg.demo.train_timeout_s} s)")
            first = client.wait_policy_version(1, float(cfg.demo.train_timeout_s), check=sup.check)
            _line(f"policy v{first['version']} active on the robot ({first.get('policy_type')})")
            learned = []
            for i in range(int(cfg.demo.eval_episodes)):
                r = run_episode(client, "policy", max_steps, check=sup.check)
                learned.append(r)
                v = client.policy_active[-1].get("version") if client.policy_active else "?"
                _line(f"policy {i + 1}/{cfg.demo.eval_episodes} (v{v}): {'success' if r.success else 'FAIL   '} "
                      f"{r.steps:3d} steps -> episode {r.episode} "
                      f"| success so far {sum(x.success for x in learned)}/{len(learned)}")
            summary = _summary(cfg, run_dir, scripted, learned, client, time.monotonic() - t_start)
        except NodeDiedError as e:
            _line(f"FAILED: {e}")
            return 1
        except TimeoutError as e:
            _line(f"FAILED: {e}")
            return 1
        finally:
            client.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_summary(summary)
    return 0


def run_practice_demo(cfg, run_dir: Path) -> int:
    """demo.loop=practice: demos -> classifier -> learner -> reset-free practice -> before/after summary."""
    from omegaconf import OmegaConf

    from robot_stack.practice.experiment import (
        PracticeExperiment,
        learner_recipe,
        plot_curve,
        run_practice_experiment,
    )
    from robot_stack.practice.session import TaskPair

    t0 = time.monotonic()
    settings = OmegaConf.to_container(cfg.demo.practice, resolve=True)
    try:
        x = PracticeExperiment(forward_task=str(cfg.task.name), obs=str(cfg.demo.get("obs", "state")), **settings)
        TaskPair.from_sim_tasks(x.forward_task)   # a forward task with a reverse, before minutes of work
        from robot_stack.practice.experiment import learner_config

        learner_config(x)                         # a recipe that fits demo.obs
    except (TypeError, ValueError) as e:
        _line(f"FAILED: demo.practice: {e}")
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    _line(f"practice demo in {run_dir}: task {x.forward_task}, {x.obs} observations, learner {learner_recipe(x)}, "
          f"judge {x.judge}, {x.attempts} attempts")
    r = run_practice_experiment(x, run_dir, log=_line)
    png = plot_curve(r, run_dir / "practice.png")
    f = r["final"]

    def rate(d: dict) -> str:
        return f"{d['successes']}/{d['episodes']}"

    fw, bw = x.forward_task, next(k for k in r["after"] if k != x.forward_task)
    fw_language = TaskPair.from_sim_tasks(x.forward_task).forward[1]
    clf = "; ".join(f"{'forward' if task == fw_language else 'backward'} FP {_pct(v.get('fp_rate'))} "
                    f"FN {_pct(v.get('fn_rate'))}" for task, v in r["classifier_on_practice"].items())
    summary = {
        "task pair": f"{fw} <-> {bw}",
        "observations": x.obs,
        "learner": learner_recipe(x),
        "forward success before -> after": f"{rate(r['before'][fw])} -> {rate(r['after'][fw])}",
        "backward success before -> after": f"{rate(r['before'][bw])} -> {rate(r['after'][bw])}",
        "after, acting as it practised": (f"forward {rate(r['after_sampled'][fw])}, backward "
                                          f"{rate(r['after_sampled'][bw])} (sampled actions, gripper held)"),
        "practice attempts": f["attempts"],
        "interventions / 100 attempts": _interventions(f),
        "scheduled resets": f["scheduled_resets"],
        "labels corrected at interventions": _corrections(x, f, r),
        "classifier FP/FN on practice": clf,
        "policy versions acted": len(r["versions"]),
        "missed ticks": _missed_ticks(f.get("policy_ticks", {})),
        "learner updates": r["updates"],
        "success-over-attempts plot": str(png) if png else "matplotlib missing",
        "store": r["store"],
        "wall time (min)": round((time.monotonic() - t0) / 60, 1),
    }
    (run_dir / "summary.json").write_text(json.dumps({"summary": summary, "result": r}, indent=2, default=str))
    _print_summary(summary)
    return 0


def _interventions(final: dict) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in final["resets_by_kind"].items() if n and k != "scheduled")
    return f"{float(final['interventions_per_100_attempts']):.1f}" + (f" ({kinds})" if kinds else "")


def _corrections(x, final: dict, r: dict) -> str:
    if not x.review_attempts:
        return "no review (demo.practice.review_attempts=0)"
    return (f"{final.get('label_corrections', 0)} (the last {x.review_attempts} attempts reviewed at each intervention; "
            f"classifier fine-tuned {len(r.get('classifier_retrains', []))} times)")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * float(x):.0f} %"


def _missed_ticks(t: dict) -> str:
    """In one process the rig waits for the policy, so a tick is 'missed' when its policy step took longer than the
    control period (what the inference node would have missed on the real-time graph)."""
    if not t.get("ticks"):
        return "no ticks ran"
    return (f"{t['over_period']} of {t['ticks']} policy steps over the {t['period_ms']:.0f} ms control period "
            f"(median {t['median_ms']} ms, p99 {t['p99_ms']} ms, max {t['max_ms']} ms)")


def _summary(cfg, run_dir, scripted, learned, client, elapsed_s) -> dict:
    from robot_stack.store import TrajectoryStore

    store = TrajectoryStore.open(str(cfg.store), mode="r")
    by_source: dict[str, int] = {}
    for i in range(store.n_episodes):
        src = store.episode_meta(i).source
        by_source[src] = by_source.get(src, 0) + 1
    activated = [r for r in client.policy_active if r.get("status") == "ok"]
    status = dict(client.inference_status)
    return {
        "task": str(cfg.task.language),
        "episodes_recorded": store.n_episodes,
        "episodes_by_source": by_source,
        "steps_recorded": store.n_steps,
        "scripted_success": f"{sum(r.success for r in scripted)}/{len(scripted)}",
        "learned_success": f"{sum(r.success for r in learned)}/{len(learned)}",
        "learned_success_by_version": _by_version(store, learned),
        "weight_versions_swapped": [r["version"] for r in activated],
        "inference_ticks": status.get("ticks"),
        "inference_missed_ticks": status.get("missed_ticks"),
        "inference_max_step_ms": status.get("max_step_ms"),
        "dropped_steps": sum(r.dropped for r in scripted + learned),
        "store": str(Path(str(cfg.store)).resolve()),
        "checkpoints": str(Path(str(cfg.checkpoints)).resolve()),
        "logs": str((run_dir / "logs").resolve()),
        "elapsed_s": round(elapsed_s, 1),
    }


def _by_version(store, learned) -> dict[str, str]:
    """Success per policy version that drove the episode (read back from the store's episode metadata)."""
    counts: dict[str, list[int]] = {}
    for r in learned:
        version = store.episode_meta(r.episode).policy_version if r.episode is not None else "unrecorded"
        c = counts.setdefault(str(version), [0, 0])
        c[0] += int(r.success)
        c[1] += 1
    return {v: f"{ok}/{n}" for v, (ok, n) in counts.items()}


def _print_summary(s: dict) -> None:
    print("\n========== robot_stack demo summary ==========")
    width = max(len(k) for k in s)
    for k, v in s.items():
        print(f"  {k:{width}s} {v}")
    print("==============================================", flush=True)


def main(argv: list[str]) -> int:
    return run_demo(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
