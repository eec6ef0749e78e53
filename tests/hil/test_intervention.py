"""HIL: intervention mode end to end on the sim (profile sim_deploy). A saved, untrained tiny bc_conv drives;
the replay device takes over with the intervene key and hands back; the committed episode is a policy
episode with interventions counted and the person's (replayed) actions recorded among the steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.hil

TELEOP_ACTION = [0.0, 0.013, 0.0, 0.0, 0.0, 0.0, 1.0]  # distinctive: the policy never outputs exactly this


def _tiny_checkpoint(root):
    torch = pytest.importorskip("torch")
    from robot_stack.policies.base import make_policy
    from robot_stack.policies.bc_conv import BCConvConfig
    from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
    from robot_stack.policies.normalizer import Normalizer
    from robot_stack.types import rig_features

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.005, size=(100, 7))
    actions[:, 6] = 1.0
    normalizer = Normalizer.fit(actions, rng.normal(size=(100, 14)))
    cfg = BCConvConfig(image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,), group_norm_groups=4)
    schema = PolicySchema.from_features(rig_features({"front": (128, 128), "wrist": (128, 128)}, n_joints=6))
    return save_checkpoint(make_policy("bc_conv", cfg, normalizer), normalizer, schema, root, 1, step=0)


def test_policy_drives_person_intervenes_and_hands_back(tmp_path):
    from robot_stack.cli.collect import parse_args, run_collect
    from robot_stack.store import TrajectoryStore

    ckpt = _tiny_checkpoint(tmp_path / "ckpt")
    zero = {"action": [0, 0, 0, 0, 0, 0, 1], "events": []}
    rows = [{"action": [0, 0, 0, 0, 0, 0, 1], "events": ["start"]}] + [zero] * 6  # the policy drives
    rows += [{"action": [0, 0, 0, 0, 0, 0, 1], "events": ["intervene"]}]  # person takes over
    rows += [{"action": TELEOP_ACTION, "events": []}] * 4
    rows += [{"action": TELEOP_ACTION, "events": ["intervene"]}] + [zero] * 6  # hand back to the policy
    rows += [{"action": [0, 0, 0, 0, 0, 0, 1], "events": ["success"]}]
    replay = tmp_path / "intervene.jsonl"
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = tmp_path / "store.zarr"
    lines: list[str] = []
    own, overrides = parse_args(["rig=sim_widowx", "task=put_cube_in_bowl", "episodes=1", "device=replay", "policy=1",
                                 f"store={store}", f"teleop.path={replay}", f"inference.policy={ckpt}"])
    report = run_collect(own, overrides, log_dir=tmp_path / "logs", status=lines.append)
    assert report.committed == [0] and report.interventions == 1, (report, lines[-5:])

    s = TrajectoryStore.open(str(store), mode="r")
    meta = s.episode_meta(0)
    assert meta.source == "policy" and meta.policy_version and meta.policy_version.endswith("v1")
    assert meta.interventions >= 1
    actions = s.get_episode(0)["action"]
    is_teleop = np.all(np.isclose(actions, np.float32(TELEOP_ACTION), atol=1e-6), axis=1)
    assert 3 <= is_teleop.sum() <= 5, actions  # the person's steps, as executed (within the clamp)
    first, last = np.flatnonzero(is_teleop)[[0, -1]]
    assert first >= 2 and last < len(actions) - 2  # policy steps before the takeover and after the hand-back
