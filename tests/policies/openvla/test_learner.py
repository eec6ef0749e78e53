"""`learner=openvla_lora` end to end: tiny release-layout base + a tiny store -> the registered learner service
writes adapter-only versions v0001, v0002 and announces them -> the PolicyRunner swaps to the newest adapter;
a restarted learner resumes from the latest version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robot_stack.conf import load_config
from robot_stack.inference.runner import PolicyRunner
from robot_stack.learn.services import build_service
from robot_stack.policies.checkpoint import PolicySchema, latest_checkpoint, load_policy, verify_checkpoint
from robot_stack.policies.openvla.learner import OpenVLALearnerConfig, OpenVLALearnerService
from robot_stack.store import TrajectoryStore
from robot_stack_testing.tiny_openvla import write_tiny_store


def _config(tiny_base, store, ckpt, *extra):
    return load_config(["learner=openvla_lora", f"store={store}", f"checkpoints={ckpt}",
                        f"learner.base_dir={tiny_base}", "learner.device=cpu", "learner.min_episodes=2",
                        "learner.steps_per_version=2", "learner.batch_size=2", "learner.lora_rank=4",
                        "learner.lora_alpha=4", "learner.poll_interval_s=0.05", "learner.log_every_steps=1", *extra])


def test_the_recipe_is_openvlas(tiny_base):
    cfg = load_config(["learner=openvla_lora"])
    d = dict(cfg.learner)
    d.pop("torch_threads")
    learner = OpenVLALearnerConfig.from_dict(d)
    assert (learner.lora_rank, learner.lora_alpha, learner.lora_dropout, learner.lr, learner.batch_size) == \
        (32, 16, 0.0, 5e-4, 16)
    assert learner.image_aug and learner.unnorm_key is None and learner.task == cfg.task.language
    policy_cfg = learner.policy_config("x")
    assert policy_cfg.lora_alpha == 16 and policy_cfg.train_crop_scale == 0.9 and policy_cfg.train_color_jitter
    with pytest.raises(ValueError, match=r"alpha = min\(rank, 16\) = 16"):
        OpenVLALearnerConfig.from_dict({**d, "lora_alpha": 32})


def test_the_learner_writes_adapter_versions_the_runner_swaps_to_and_resumes(tiny_base, tmp_path, obs):
    store_path = write_tiny_store(tmp_path / "store.zarr", n_episodes=2)
    ckpt = tmp_path / "ckpt"
    announced, progress = [], []
    service = build_service(_config(tiny_base, store_path, ckpt), announced.append, progress.append)
    assert isinstance(service, OpenVLALearnerService)
    service.run()
    assert [u.version for u in announced] == [1, 2] and [r["step"] for r in progress] == [1.0, 2.0, 3.0, 4.0]
    assert latest_checkpoint(ckpt).name == "v0002"
    from safetensors.torch import load_file

    for version, parent in ((1, None), (2, 1)):
        path = ckpt / f"v000{version}"
        manifest = verify_checkpoint(path)
        assert (manifest.version, manifest.step, manifest.parent_version) == (version, 2 * version, parent)
        assert manifest.extra["base_fingerprint"] and manifest.extra["episodes"] == 2
        weights = load_file(str(path / "model.safetensors"))
        assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)   # the adapter only
        assert json.loads((path / "config.json").read_text())["config"]["lora_rank"] == 4
    assert not list(ckpt.glob(".tmp-*"))

    store = TrajectoryStore.open(store_path, mode="r")
    schema = PolicySchema.from_store_schema(store.schema)
    store.close()
    expected_v2 = load_policy(ckpt / "v0002", expected_schema=schema)[0].select_action(obs)
    runner = PolicyRunner(schema)
    try:
        for update in announced:          # the loader thread stages each; the next tick swaps to it
            runner.request_load(update)
            assert runner.wait_idle(60)
            action = runner.step(obs)
            assert runner.active_version == update.version
        assert np.array_equal(action, expected_v2) and runner.stats.rejected == 0 and runner.stats.swaps == 2
    finally:
        runner.close()

    # A restarted learner re-announces v2, then continues from its adapter and step to v3 (parent 2).
    announced.clear()
    build_service(_config(tiny_base, store_path, ckpt, "learner.max_versions=1"), announced.append, None).run()
    assert [u.version for u in announced] == [2, 3]
    manifest = verify_checkpoint(ckpt / "v0003")
    assert (manifest.step, manifest.parent_version) == (6, 2)


def test_a_stopped_learner_publishes_nothing_partial(tiny_base, tmp_path):
    store_path = write_tiny_store(tmp_path / "store.zarr", n_episodes=1)     # below min_episodes: waits
    service = build_service(_config(tiny_base, store_path, tmp_path / "ckpt"), None, None)
    thread = service.start()
    service.stop()
    thread.join(30)
    assert not thread.is_alive() and service.updates == [] and not (tmp_path / "ckpt").exists()
