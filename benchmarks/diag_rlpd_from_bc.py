"""Where does RLPD lose a BC-level start? Offline RL updates on the demos alone, no online data (Tier 1c's data).

    python benchmarks/diag_rlpd_from_bc.py WORK_DIR [VARIANT ...]   e.g.  /tmp/diag base lowlr

Phase A (once, cached in WORK_DIR/bc): rlpd_state with the BC warm start (bc_steps 2000) on 20 scripted demos of
put_cube_in_bowl (Tier 1c's seed-0 data). Phase B, per variant: a copy of that checkpoint continues with RLPD's RL
actor loss for `RL_STEPS` more updates on the same demos only, evaluated every `EVERY` updates (20 episodes,
deterministic, the benchmark's evaluation seeds). If success falls here too, the collapse seen online is the
actor exploiting the critic on the demos' own states, not the online data. Per-eval diagnostics: Q of data vs
policy actions, the policy's distance from the demo action per dimension, gripper agreement, α.
Writes WORK_DIR/diag_rlpd_from_bc.jsonl (one line per evaluation).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import TIER1B_TASK, generate_state, learner_cfg, log, sizes, state_sim, success  # noqa: E402

BC_STEPS, RL_STEPS, EVERY = 2000, 1500, 500

# Variants of the continued phase (RLPDConfig fields; "bc_steps" stays 2000 so the RL loss starts at once).
VARIANTS: dict[str, dict] = {
    "base": {},                                                 # RLPD as published after the BC start
    "lowlr": {"actor_lr": 3e-5},                                # actor moves 10x slower (needs the resume lr fix)
    "bcw": {"bc_weight": 1.0, "bc_q_filter": False},            # TD3+BC-style anchor
    "noent": {"backup_entropy": False},                         # no entropy in the backup
}


def probe(svc, n: int = 1024) -> dict:
    """Critic and actor on a demo batch: Q(s, a_data), Q(s, π(s)), |π(s) − a| per policy-space dim, gripper."""
    p = svc.policy
    rng = np.random.default_rng(123)
    b = svc._offline_batch(0, n, rng)
    p.eval()
    with torch.no_grad():
        o = p.prepare_obs(b)
        a = p.to_policy_action(b["action"])
        mean, log_std = p.actor_dist(o)
        pi = p.binarize_gripper(p.fix_actions(torch.tanh(mean)))
        q_data = p.critic_q(o, a.unsqueeze(1))[..., 0]
        q_pi = p.critic_q(o, pi.unsqueeze(1))[..., 0]
        err = (pi - a).abs().mean(0).tolist()
        grip = float(((pi[:, -1] > 0) == (a[:, -1] > 0)).float().mean())
    return {"q_data": float(q_data.mean()), "q_pi": float(q_pi.mean()), "q_pi_minus_data": float((q_pi - q_data).mean()),
            "abs_err_per_dim": [round(e, 4) for e in err], "gripper_agree": grip,
            "log_std": [round(float(x), 2) for x in log_std.mean(0)], "mc_return": float(b["mc_return"].mean()),
            "alpha": float(p.log_alpha.exp())}


def run_variant(work: Path, name: str, base_ckpt: Path, out) -> None:
    from robot_stack.learn.rl_service import RLLearnerService

    ckpt = work / f"ckpt_{name}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    shutil.copytree(base_ckpt, ckpt)
    S = sizes(False)
    cfg = learner_cfg("rlpd_state", TIER1B_TASK, S, 0, online=False)
    cfg.algo_config = {**cfg.algo_config, "bc_steps": BC_STEPS, **VARIANTS[name]}
    cfg.offline_steps = BC_STEPS
    svc = RLLearnerService(work / "store.zarr", ckpt, cfg)
    sim = state_sim(TIER1B_TASK)
    svc.open()
    try:
        for k in range(0, RL_STEPS + 1, EVERY):
            if k:
                cfg.offline_steps = BC_STEPS + k
                svc.phase = "offline"
                t0 = time.perf_counter()
                svc.train_offline()
                log(f"{name}: {svc.step} updates ({time.perf_counter() - t0:.0f} s)")
            ev = success(svc.policy, TIER1B_TASK, sim, 20)
            row = {"variant": name, "updates": svc.step, "rl_updates": k, "successes": ev["successes"],
                   "goal_dist_m": ev["goal_dist_m"], **probe(svc)}
            log(json.dumps(row))
            out.write(json.dumps(row) + "\n")
            out.flush()
    finally:
        svc.close()
        sim.close()


def main() -> None:
    from robot_stack.learn.rl_service import RLLearnerService

    work = Path(sys.argv[1])
    names = sys.argv[2:] or ["base"]
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    store = work / "store.zarr"
    base_ckpt = work / "bc"
    if not base_ckpt.exists():
        generate_state(store, [TIER1B_TASK], 20, 0.0, 4000)
        cfg = learner_cfg("rlpd_state", TIER1B_TASK, sizes(False), 0, online=False, offline_steps=BC_STEPS)
        cfg.algo_config = {**cfg.algo_config, "bc_steps": BC_STEPS}
        t0 = time.perf_counter()
        RLLearnerService(store, work / "bc_tmp", cfg).run()
        (work / "bc_tmp").rename(base_ckpt)
        log(f"BC phase: {BC_STEPS} updates in {time.perf_counter() - t0:.0f} s")
    with open(work / "diag_rlpd_from_bc.jsonl", "a") as out:
        for name in names:
            run_variant(work, name, base_ckpt, out)


if __name__ == "__main__":
    main()
