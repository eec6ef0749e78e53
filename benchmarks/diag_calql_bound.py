"""Where is Cal-QL's lower bound active? A diagnostic for the Tier 1b validity gate (benchmarks/results/learning.md).

Trains calql.yaml (state mode, the Tier 1b data: 100 episodes of put_cube_in_bowl, 60 % deliberate failures) offline,
then scores 4 sampled policy actions per transition with every critic head and compares Q(s, a_pi) with the
Monte-Carlo return G(s) the bound clips to, split by successful and failed trajectories and by G on successes.

    python benchmarks/diag_calql_bound.py ALPHA STEPS SEED [ALGO_JSON]   # e.g. 5 6000 0  (~5 min on one core)
    python benchmarks/diag_calql_bound.py 5 6000 0 '{"n_backup_actions": 1}'  # other algo_config keys too

Prints one JSON line (RESULT {...}) and appends it to benchmarks/results/calql_bound_diag.jsonl.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_learning as B  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    alpha, steps, seed = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    S = B.sizes(False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "store.zarr"
        B.generate_state(store, [B.TIER1B_TASK], S["t1b_episodes"], S["t1b_failure_share"], 3000 + seed)
        cfg = B.learner_cfg("calql", B.TIER1B_TASK, S, seed, offline_steps=steps, online=False)
        cfg.algo_config = {**cfg.algo_config, "cql_alpha": alpha, **extra}
        svc, train_s = B.offline(cfg, store, work, f"alpha {alpha}")
        pol, pool = svc.policy, svc.prior_pool
        a = pool.arrays
        mc = a["mc_return"]
        # A failed trajectory's every step gets r_neg/(1-gamma) (JaxCQL calc_return_to_go): the value floor.
        fail = np.isclose(mc, -1.0 / (1.0 - cfg.algo_config["discount"]))
        qpi = []
        with torch.no_grad():
            for s in range(0, len(mc), 512):
                ii = np.arange(s, min(s + 512, len(mc)))
                o = pol.prepare_obs({k: torch.from_numpy(a[k][ii]) for k in [*pool.obs_keys, "task_index"]})
                mean, log_std = pol.actor_dist(o)
                act, _ = pol.sample_from(mean, log_std, 4)
                q = pol.critic_q(o, act).float()                       # (heads, B, 4)
                qpi.append(q.permute(1, 0, 2).reshape(len(ii), -1).numpy())
        qpi = np.concatenate(qpi)
        active = qpi < mc[:, None]
        ok = ~fail
        res = {"alpha": alpha, "algo_overrides": extra, "offline_steps": steps, "seed": seed, "train_s": train_s,
               "bound_rate": float(active.mean()), "share_success_transitions": float(ok.mean()),
               "bound_rate_success": float(active[ok].mean()), "bound_rate_failure": float(active[fail].mean()),
               "q_pi_success": float(qpi[ok].mean()), "mc_success": float(mc[ok].mean()),
               "q_pi_failure": float(qpi[fail].mean()), "mc_failure": float(mc[fail].mean()), "success_by_mc": {}}
        for lo, hi in [(-5, -1e-9), (-10, -5), (-20, -10), (-50, -20)]:
            m = ok & (mc > lo) & (mc <= hi)
            if m.any():
                res["success_by_mc"][f"G in ({lo},{hi:.0f}]"] = {"q_pi": float(qpi[m].mean()),
                                                                 "bound_rate": float(active[m].mean()),
                                                                 "transitions": int(m.sum())}
        res["diagnostics"] = B.diagnostics(svc, 200)
        res["eval"] = B.success_in_state_sim(pol, B.TIER1B_TASK, 20)
    print("RESULT", json.dumps(res))
    with open(B.RESULTS / "calql_bound_diag.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
