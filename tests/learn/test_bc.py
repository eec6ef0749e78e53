"""BC training on real tmp stores: overfitting, episode filters, and the LearnerService end to end."""

import threading

import numpy as np
import pytest

from robot_stack.inference.manifest import PolicyUpdate, parse_update
from robot_stack.inference.runner import PolicyRunner
from robot_stack.learn.bc import LearnerConfig, LearnerService, train_bc
from robot_stack.learn.dataset import FrameDataset, eligible_episodes
from robot_stack.policies.checkpoint import PolicySchema, latest_checkpoint, verify_checkpoint

TINY = {"image_size_px": 16, "conv_channels": [8, 8, 8, 8], "hidden_dims": [64, 64], "group_norm_groups": 4}


def test_bc_overfits_a_tiny_dataset(store_factory):
    _, store = store_factory(2, hw=(32, 32), n_steps=16)
    reports = []
    result = train_bc(store, LearnerConfig(batch_size=16, log_every_steps=100), steps=300,
                      on_progress=reports.append, policy_config={**TINY, "lr": 1e-3})
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert last < first / 20, (first, last)
    assert [r["step"] for r in reports] == [100, 200, 300] and all(r["steps_per_s"] > 0 for r in reports)

    # The memorised frames come back in physical units: training and inference normalise the same way.
    frames = store.get_episode(0)
    norm = result.normalizer
    for t in range(0, 16, 5):
        obs = {k: v[t] for k, v in frames.items()}
        action = result.policy.select_action(obs)
        err = np.abs(norm.normalize_action(action) - norm.normalize_action(frames["action"][t]))[:5]
        assert err.max() < 0.3, (t, err)
        assert (action[6] > 0.5) == (frames["action"][t, 6] > 0.5)
        assert action[5] == pytest.approx(0.0)  # constant dyaw stays exactly constant


def test_episode_filters(store_factory):
    _, store = store_factory(5, hw=(8, 8), n_steps=3, sources={1: "policy", 2: "teleop"}, successes={3: False})
    assert eligible_episodes(store, ("sim", "teleop"), success_only=True) == [0, 2, 4]
    assert eligible_episodes(store, ("sim",), success_only=False) == [0, 3, 4]
    assert eligible_episodes(store, None, success_only=True, task="another task") == []
    ds = FrameDataset.from_store(store, [0, 2], ["observation.state", "action"])
    assert len(ds) == 6 and ds.add_episodes(store, [0, 2, 4]) == 3
    assert ds.episode_of_frame.tolist() == [0, 0, 0, 2, 2, 2, 4, 4, 4]


def test_learner_service_end_to_end(store_factory, tmp_path):
    store_path, writer = store_factory(1)  # 64x64 images, fewer episodes than min_episodes
    cfg = LearnerConfig(sources=("sim",), min_episodes=2, steps_per_version=20, max_versions=1, batch_size=8,
                        poll_interval_s=0.05, log_every_steps=10, tensorboard_dir=str(tmp_path / "tb"))
    announced: list[PolicyUpdate] = []
    progress = []
    service = LearnerService(store_path, tmp_path / "ckpt", cfg, "bc_conv", TINY, announce=announced.append,
                             on_progress=progress.append)
    thread = service.start()
    store_factory.append(writer, 1, source="policy")  # not an eligible source: still waiting
    store_factory.append(writer, 2)                    # the second eligible episode: training starts
    store_factory.append(writer, 3)
    service.join(60)
    assert not thread.is_alive()

    assert len(announced) == 1
    update = announced[0]
    assert parse_update(update.to_json()) == update and update.version == 1
    manifest = verify_checkpoint(update.path)
    assert (manifest.version, manifest.parent_version, manifest.step) == (1, None, 20)
    assert latest_checkpoint(tmp_path / "ckpt").name == "v0001"
    assert [p["step"] for p in progress] == [10, 20]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))

    # The inference side loads the announced checkpoint against the live robot's schema and acts.
    runner = PolicyRunner(PolicySchema.from_store_schema(writer.schema))
    runner.request_load(parse_update(update.to_json()))
    assert runner.wait_idle(30)
    obs = {k: v[0] for k, v in writer.get_episode(0).items() if k.startswith("observation.")}
    action = runner.step(obs)
    assert runner.active_version == 1 and action.shape == (7,) and np.all(np.isfinite(action))
    runner.close()

    # Restart: resumes v1 (re-announced), continues the step count and writes v2 with parent 1.
    restarted = []
    LearnerService(store_path, tmp_path / "ckpt", cfg, "bc_conv", TINY, announce=restarted.append).run()
    assert [u.version for u in restarted] == [1, 2]
    m2 = verify_checkpoint(restarted[1].path)
    assert (m2.parent_version, m2.step, m2.extra["episodes"]) == (1, 40, 3)


def test_learner_stops_while_waiting(tmp_path):
    cfg = LearnerConfig(poll_interval_s=0.05)
    service = LearnerService(tmp_path / "no_store_yet.zarr", tmp_path / "ckpt", cfg, "bc_conv", TINY)
    thread = service.start()
    assert thread.is_alive()
    threading.Timer(0.2, service.stop).start()
    service.join(10)
    assert not thread.is_alive() and service.updates == [] and not (tmp_path / "ckpt").exists()

