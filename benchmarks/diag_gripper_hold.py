"""Which part of RLPD's executed action decides Tier 1c success: the arm (mean vs sampled), the gripper (logit sign
vs sampled) or holding the gripper decision? A diagnostic for benchmarks/results/learning_findings.md ("RLPD with
300 online episodes and a held gripper").

    python benchmarks/diag_gripper_hold.py SEED      # e.g. 1: the 1c rlpd@30 cell (~10 min on a free core)

Runs the `1c:rlpd@30:SEED` cell of bench_learning.py unchanged (same data, training and seeds), then evaluates its
final policy on the same 30 seeded resets with every (arm, gripper, hold 1 | 5 ticks) combination. Writes
benchmarks/results/gripper_hold_diag_SEED.json.
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
    from robot_stack.learn.evaluate import PolicyActor, evaluate
    from robot_stack.types import GRIPPER_INDEX

    torch.set_num_threads(1)
    seed = int(sys.argv[1])

    class Mixed(PolicyActor):
        """Arm from the mean ("det") or a sample ("smp"), gripper from the logit sign or a sample, held or not."""

        def __init__(self, policy, arm: str, gripper: str, hold_steps: int):
            super().__init__(policy, stochastic=False, gripper_hold_steps=hold_steps)
            self.arm, self.grip, self.hold_steps = arm, gripper, hold_steps

        def act(self, obs, sim):
            det, smp = self.policy.select_action(obs), self.policy.sample_actions(obs, 1)[0]
            a = np.array(det if self.arm == "det" else smp, dtype=np.float32)
            a[GRIPPER_INDEX] = (det if self.grip == "det" else smp)[GRIPPER_INDEX]
            return self.gripper.apply(a) if self.hold_steps > 1 else a

    results: dict = {"cell": f"1c:rlpd@30:{seed}", "episodes": None, "success": {}}
    final_eval = B.success

    def success_then_variants(policy, task, sim, n, stochastic=False):
        out = final_eval(policy, task, sim, n, stochastic)
        if stochastic:   # the cell's last evaluation: the final policy
            results["episodes"] = n
            for arm in ("det", "smp"):
                for grip in ("det", "smp"):
                    for hold in (1, 5):
                        e = evaluate(Mixed(policy, arm, grip, hold), task, episodes=n, seed=B.EVAL_SEED, sim=sim)
                        results["success"][f"arm={arm} gripper={grip} hold={hold}"] = e.successes
                        print(f"arm {arm} gripper {grip} hold {hold}: {e.successes}/{e.n}", flush=True)
        return out

    B.success = success_then_variants
    with tempfile.TemporaryDirectory() as tmp:
        B.online_cell("rlpd@30", seed, B.sizes(False), Path(tmp), "1c")
    (B.RESULTS / f"gripper_hold_diag_{seed}.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
