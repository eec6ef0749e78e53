"""ROS-free learner entry: `python -m robot_stack.learn.run learner=calql store=... checkpoints=... [overrides]`.

`policy:=<name>` trains a policy manifest's recipe (policies/<name>.yaml, robot_stack/policies/catalog.py): its
rig, task, learner, policy and overrides come first, the command line's overrides after, and the checkpoints go
where `policy:=<name>` deploys them from.

Composes the same hydra config as the nodes, builds the service registered for `learner.algo` and runs it in
the foreground (Ctrl-C stops it after the current step; the last checkpoint is the resume point).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from robot_stack.conf import ConfigError, load_config
    from robot_stack.learn.services import build_service
    from robot_stack.policies.catalog import PolicyManifestError, expand_recipe_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_config(expand_recipe_args(argv))
    except (ConfigError, PolicyManifestError) as e:
        print(f"[learn] {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(int(cfg.learner.get("torch_threads", 1)))
    try:
        service = build_service(cfg)
    except (ValueError, KeyError) as e:
        print(f"[learn] {e}", file=sys.stderr)
        return 2
    try:
        service.run()
    except KeyboardInterrupt:
        service.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
