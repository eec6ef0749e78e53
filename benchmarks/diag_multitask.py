"""Multi-task state mode, Tier 1a's data: does multi-task BC / PTR learn a prior task and the held-out task?
A diagnostic for benchmarks/results/learning_findings.md ("Tier 1a PTR, re-diagnosed"); seed 0, 20 evaluation
episodes per task, so ±0.1.

    PRIOR=50 python benchmarks/diag_multitask.py bc 10000                       # multi-task bc_actor
    PRIOR=50 python benchmarks/diag_multitask.py bc 5000 '{"task": "put the cube in the bowl"}'   # single task
    PRIOR=50 python benchmarks/diag_multitask.py ptr 6000 '{"policy": {"condition_low_dim_encoder": true}}'

ALGO bc | ptr, STEPS offline updates, optional JSON: "algo" (algo_config keys), "policy" (policy_config keys), any
other RLLearnerConfig field. PRIOR: episodes per prior task (default Tier 1a's 15; 30 % failures). Prints, per
task, the deterministic action's mean |π − a_data| per normalised dimension on successful prior transitions and
the gripper agreement, then the success on put_cube_in_bowl (a prior task) and put_block_in_bowl (held out);
appends one JSON line to benchmarks/results/multitask_diag.jsonl.
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_learning as B  # noqa: E402


def main() -> None:
    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.sim.tasks import prior_tasks

    torch.set_num_threads(1)
    algo, steps = sys.argv[1], int(sys.argv[2])
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    per_task = int(os.environ.get("PRIOR", "15"))
    S = B.sizes(False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "store.zarr"
        prior = prior_tasks()
        B.generate_state(store, prior, per_task * len(prior), 0.3, 1000)
        B.generate_state(store, [B.TIER1A_TASK], S["t1a_target_demos"], 0.0, 2000)
        if algo == "ptr":
            cfg = B.learner_cfg("ptr", B.TIER1A_TASK, S, 0, offline_steps=steps, target_switch_step=(2 * steps) // 3)
        else:   # multi-task unless the JSON names a task
            cfg = B.learner_cfg("bc_actor", B.TIER1A_TASK, S, 0, offline_steps=steps, task=None)
        cfg.algo_config = {**cfg.algo_config, **extra.pop("algo", {})}
        cfg.policy_config = {**cfg.policy_config, **extra.pop("policy", {})}
        for k, v in extra.items():
            setattr(cfg, k, v)
        svc = RLLearnerService(store, work / "ckpt", cfg, on_progress=B.progress_printer(algo))
        t0 = time.perf_counter()
        svc.run()
        train_s = time.perf_counter() - t0
        pol, pool = svc.policy, svc.prior_pool
        pol.eval()
        a = pool.arrays
        fit = {}
        with torch.no_grad():
            for ti, task in enumerate(svc.tasks):
                idx = np.flatnonzero((a["task_index"] == ti) & (a["success"] > 0))
                if len(idx) == 0:
                    continue
                batch = {k: torch.from_numpy(a[k][idx]) for k in [*pool.obs_keys, "task_index"]}
                mean, _ = pol.actor_dist(pol.prepare_obs(batch))
                a_data = pol.to_policy_action(torch.from_numpy(a["action"][idx]))
                err = (torch.tanh(mean) - a_data).abs().mean(0).numpy()
                grip = float(((mean[:, 6] > 0) == (a_data[:, 6] > 0)).float().mean())
                fit[task] = {"abs_err": [round(float(x), 3) for x in err], "gripper_agree": round(grip, 3)}
                print(f"{task:38s} n={len(idx):5d} |pi-a| {np.round(err, 2)} gripper agree {grip:.2f}")
        res = {"algo": algo, "steps": steps, "prior_per_task": per_task, "overrides": json.loads(sys.argv[3])
               if len(sys.argv) > 3 else {}, "train_s": train_s, "fit": fit,
               "diagnostics": B.diagnostics(svc, 200)}
        for task in (B.TIER1B_TASK, B.TIER1A_TASK):
            if not cfg.task or task == B.TIER1B_TASK:
                res[task] = B.success_in_state_sim(pol, task, 20)
                print(task, res[task])
    with open(B.RESULTS / "multitask_diag.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
