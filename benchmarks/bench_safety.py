"""Safety benchmark: adversarial command streams through the real controller and the real MuJoCo arms.

    python benchmarks/bench_safety.py [--commands 10500] [--seed 0]

For each sim arm (WidowX 250s, Panda) and each stream of robot_stack/arms/stress.py (random 5x-clamp steps,
malformed messages, walls, corners, continuous rotation, singular wrist, start outside the box), at the rig's
own limits (conf/rig/sim_*.yaml) and 5 Hz: executed steps over a limit, judged on the commanded motion (FK of
the joint command vs the measured pose it was sent from; exact) and on the measured pose that followed
(servo slack), with contact steps reported apart. Writes benchmarks/results/safety.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RIGS = (("widowx", "sim_widowx"), ("panda", "sim_franka"))
OUT = Path(__file__).parent / "results"


def main(argv=None) -> int:
    import logging

    from omegaconf import OmegaConf

    import robot_stack.conf
    from robot_stack.arms.safety import SafetyConfig
    from robot_stack.arms.stress import MEASURED_TOL_M, MEASURED_TOL_RAD, STREAMS, run_sim_stream
    from robot_stack.sim.env import SimConfig, TabletopSim

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=10500, help="commands per arm, split over the streams")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.getLogger("robot_stack").setLevel(logging.ERROR)  # the per-step scaling warnings
    conf_dir = Path(robot_stack.conf.__file__).parent
    per_stream = max(1, args.commands // len(STREAMS))
    rows = []
    for arm, rig in RIGS:
        cfg = SafetyConfig.from_mapping(OmegaConf.to_container(OmegaConf.load(conf_dir / "rig" / f"{rig}.yaml").safety))
        sim = TabletopSim(SimConfig(image_size_px=64, cameras=("front",), arm=arm))
        for kind in STREAMS:
            t0 = time.time()
            # Episodes of 150 commands from a fresh reset (a stream that drove into a corner stays there).
            meter = None
            for k in range(0, per_stream, 150):
                meter = run_sim_stream(sim, cfg, kind, min(150, per_stream - k), seed=args.seed + k, meter=meter)
            s = meter.summary()
            s.update(rig=rig, stream=kind, max_delta_m=cfg.max_delta_m, max_delta_rad=cfg.max_delta_rad,
                     seconds=round(time.time() - t0, 1))
            rows.append(s)
            print(f"[bench_safety] {rig:10s} {kind:15s} {s['commands']:6d} commands  violations {s['violations']}  "
                  f"cmd max {s['max_cmd_step_m']:.4f} m {s['max_cmd_step_rad']:.4f} rad  ({s['seconds']} s)", flush=True)
        sim.close()
    OUT.mkdir(exist_ok=True)
    (OUT / "safety.json").write_text(json.dumps({"rows": rows, "measured_tol_m": MEASURED_TOL_M,
                                                 "measured_tol_rad": MEASURED_TOL_RAD}, indent=1))
    lines = [
        "# Safety: adversarial command streams (benchmarks/bench_safety.py)",
        "",
        f"`python benchmarks/bench_safety.py --commands {args.commands} --seed {args.seed}`: per arm "
        f"{per_stream * len(STREAMS)} commands at 5 Hz through `ArmController` + `SimArm` (the rig node's own code), "
        "at the rig's limits (conf/rig/sim_*.yaml). *cmd* = the motion actually commanded: FK of the joint command "
        "vs the measured pose it was sent from (exact, 0.1 mm / 1 mrad numerical slack). *meas* = measured pose "
        f"after the step vs before (servo slack {MEASURED_TOL_M * 1000:.0f} mm / {MEASURED_TOL_RAD} rad counted as "
        "a violation beyond that); steps in contact with the table or an object are reported apart (contact forces, "
        "not the command, move the arm there). Box columns: how far a measured pose that started inside ended "
        "outside.",
        "",
        "| rig | stream | commands | executed | violations | cmd max step m | cmd max step rad | meas max step m "
        "| meas max step rad | meas max box excess m | contact steps | contact max step rad | contact max box excess m |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['rig']} | {r['stream']} | {r['commands']} | {r['executed']} | {r['violations']} | "
                     f"{r['max_cmd_step_m']:.4f} (limit {r['max_delta_m']}) | {r['max_cmd_step_rad']:.4f} "
                     f"(limit {r['max_delta_rad']}) | {r['max_meas_step_m']:.4f} | {r['max_meas_step_rad']:.4f} | "
                     f"{r['max_box_excess_m']:.4f} | {r['contact_steps']} | {r['contact_max_meas_step_rad']:.4f} | "
                     f"{r['contact_max_box_excess_m']:.4f} |")
    total = sum(r["commands"] for r in rows)
    bad = sum(r["violations"] for r in rows)
    lines += ["", f"Total: {total} commands, {bad} violations.", ""]
    for r in rows:
        if r["first_violations"]:
            lines.append(f"- {r['rig']} {r['stream']}: " + "; ".join(r["first_violations"]))
    (OUT / "safety.md").write_text("\n".join(lines) + "\n")
    print(f"[bench_safety] {total} commands, {bad} violations -> {OUT / 'safety.md'}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
