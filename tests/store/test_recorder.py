"""EpisodeRecorder over a real zarr store: pairing actions with the observation they answered, commit, drop."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from robot_stack.store import TrajectoryStore
from robot_stack.store.align import ObservationAssembler
from robot_stack.store.recorder import EpisodeRecorder, RecorderError, parse_source, schema_for_rig

MS = 1_000_000
RIG = OmegaConf.create({"robot": "wx250s", "control_hz": 5.0, "action_space": "ee_delta", "n_joints": 6,
                        "cameras": {"front": {"height": 8, "width": 8}}})


@pytest.fixture
def recorder(tmp_path):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema_for_rig(RIG))
    rec = EpisodeRecorder(store, ObservationAssembler(("front",), max_skew_ms=150), task="put the cube in the bowl",
                          phase="forward", flush_every=2)
    yield rec
    store.close()


def _feed(rec, t_ms, value):
    rec.assembler.add_state(t_ms * MS, np.full(14, value, np.float32), t_ms * MS + 1)
    rec.assembler.add_image("front", (t_ms + 50) * MS, np.full((8, 8, 3), value, np.uint8), (t_ms + 51) * MS)


def test_records_executed_actions_with_their_observations(recorder):
    recorder.start()
    for k in range(5):
        _feed(recorder, 200 * k, k)
        assert recorder.on_executed(np.full(7, k / 10, np.float32), 200 * k * MS, "policy:bc_conv@v3")
    idx = recorder.stop(success=True)
    ep = recorder.store.get_episode(idx)
    np.testing.assert_array_equal(ep["observation.images.front"][:, 0, 0, 0], np.arange(5))
    np.testing.assert_allclose(ep["action"][:, 0], np.arange(5) / 10, rtol=1e-6)
    np.testing.assert_array_equal(ep["timestamps.action.capture_ns"], ep["timestamps.state.capture_ns"])
    meta = recorder.store.episode_meta(idx)
    assert (meta.source, meta.policy_version, meta.success, meta.phase) == ("policy", "bc_conv@v3", True, "forward")
    assert meta.interventions == 0


def test_hot_swap_mid_episode_records_every_version(recorder):
    recorder.start()
    for k, version in enumerate(["bc_conv@v1", "bc_conv@v1", "bc_conv@v2"]):
        _feed(recorder, 200 * k, k)
        recorder.on_executed(np.zeros(7, np.float32), 200 * k * MS, f"policy:{version}")
    idx = recorder.stop(success=True)
    assert recorder.store.episode_meta(idx).policy_version == "bc_conv@v1,bc_conv@v2"
    assert recorder.store.episode_meta(idx).interventions == 0


def test_takeover_is_counted_as_intervention_and_missing_obs_dropped(recorder):
    recorder.start()
    _feed(recorder, 0, 1)
    recorder.on_executed(np.zeros(7, np.float32), 0, "policy:bc_conv@v1")
    for k in (1, 2, 3):  # a three-step takeover is one intervention
        _feed(recorder, 200 * k, k)
        recorder.on_executed(np.zeros(7, np.float32), 200 * k * MS, "teleop:spacemouse")
    _feed(recorder, 800, 4)
    recorder.on_executed(np.zeros(7, np.float32), 800 * MS, "policy:bc_conv@v1")  # handed back
    _feed(recorder, 1000, 5)
    recorder.on_executed(np.zeros(7, np.float32), 1000 * MS, "teleop:spacemouse")  # second takeover
    assert not recorder.on_executed(np.zeros(7, np.float32), 999 * MS, "policy:bc_conv@v1")  # no such state
    assert recorder.n_dropped == 1
    idx = recorder.stop(success=False)
    assert recorder.store.episode_meta(idx).interventions == 2
    assert recorder.store.get_episode(idx)["action"].shape == (6, 7)


def test_empty_episode_commits_nothing_and_state_errors_are_clear(recorder):
    with pytest.raises(RecorderError, match="start"):
        recorder.stop(success=None)
    recorder.start()
    with pytest.raises(RecorderError, match="already"):
        recorder.start()
    assert recorder.stop(success=None) is None
    assert recorder.store.n_episodes == 0


def test_discard_leaves_store_unchanged(recorder):
    recorder.start()
    for k in range(3):
        _feed(recorder, 200 * k, k)
        recorder.on_executed(np.zeros(7, np.float32), 200 * k * MS, "sim:scripted_expert")
    recorder.discard()
    assert recorder.store.n_episodes == 0 and not recorder.recording


def test_source_tags():
    assert parse_source("sim:scripted_expert") == ("sim", None)
    assert parse_source("policy:bc_conv@v2") == ("policy", "bc_conv@v2")
    with pytest.raises(ValueError, match="does not start"):
        parse_source("robot:unknown")


def test_writer_stats_report_the_real_writer(recorder):
    zero = {"writer_dropped_steps": 0, "writer_buffered_steps": 0, "writer_max_buffered_steps": 0}
    assert recorder.writer_stats() == zero  # no episode yet
    recorder.start()
    for k in range(3):
        _feed(recorder, 200 * k, k)
        recorder.on_executed(np.zeros(7, np.float32), 200 * k * MS, "sim:scripted_expert")
    stats = recorder.writer_stats()
    assert stats["writer_dropped_steps"] == 0 and stats["writer_max_buffered_steps"] > 0
    assert 0 <= stats["writer_buffered_steps"] <= 3
    recorder.stop(success=True)
    assert recorder.writer_stats() == zero


def test_conductor_labels_override_the_defaults_and_add_to_takeovers(recorder):
    """Practice labels (source, phase, attempt, true_success, resets) land on the episode; a person's takeover
    during the attempt still counts as an intervention on top of the resets the conductor reports."""
    recorder.start()
    for k, src in enumerate(["policy:actor_critic@v2", "teleop:spacemouse"]):
        _feed(recorder, 200 * k, k)
        recorder.on_executed(np.zeros(7, np.float32), 200 * k * MS, src)
    idx = recorder.stop(success=False, meta_updates={"source": "practice", "phase": "backward", "attempt": 9,
                                                     "true_success": True, "interventions": 1, "notes": "{}"})
    m = recorder.store.episode_meta(idx)
    assert (m.source, m.phase, m.attempt, m.success, m.true_success) == ("practice", "backward", 9, False, True)
    assert m.interventions == 2 and m.policy_version == "actor_critic@v2"
    recorder.start()
    _feed(recorder, 1000, 1)
    recorder.on_executed(np.zeros(7, np.float32), 1000 * MS, "policy:actor_critic@v2")
    with pytest.raises(RecorderError, match="attempt.*still being recorded"):
        recorder.stop(success=True, meta_updates={"attempt": -3})
    assert recorder.recording and recorder.fault is None  # nothing lost: stop again with valid labels
    assert recorder.stop(success=True, meta_updates={"attempt": 3}) == idx + 1


def test_a_step_that_overtakes_its_frames_waits_for_them_in_order(tmp_path):
    """On a live graph an action can arrive before the camera frame it answered: with obs_grace_s the step waits
    for it (later steps queue behind it, so the episode keeps its order); a frame that never comes within the grace
    drops only that step, counted."""
    store = TrajectoryStore.create(tmp_path / "g.zarr", schema_for_rig(RIG))
    rec = EpisodeRecorder(store, ObservationAssembler(("front",), max_skew_ms=100), task="put the cube in the bowl",
                          flush_every=2, obs_grace_s=0.5)
    rec.start()
    state = lambda k: rec.assembler.add_state(200 * k * MS, np.full(14, k, np.float32), 200 * k * MS + 1)  # noqa: E731
    image = lambda k: rec.assembler.add_image("front", (200 * k + 50) * MS, np.full((8, 8, 3), k, np.uint8),  # noqa: E731
                                              (200 * k + 51) * MS)
    act = lambda k, now: rec.on_executed(np.full(7, k / 10, np.float32), 200 * k * MS, "sim:scripted", now=now)  # noqa: E731
    state(0)
    assert not act(0, now=10.0) and rec.n_pending == 1 and rec.n_steps == 0   # its frame is still on the way
    state(1)
    image(1)
    assert not act(1, now=10.1) and rec.n_pending == 2                     # complete, but waits behind step 0
    image(0)                                                               # the late frame arrives
    assert rec.flush_pending(now=10.2) == 2 and rec.n_pending == 0 and rec.n_dropped == 0
    state(2)                                                               # step 2's frame never comes
    assert not act(2, now=11.0)
    assert rec.flush_pending(now=11.4) == 0 and rec.n_pending == 1         # still within the grace
    state(3)
    image(3)
    assert not act(3, now=11.45)
    assert rec.flush_pending(now=11.5) == 1 and rec.n_dropped == 1        # 2 dropped at 0.5 s, then 3 recorded
    idx = rec.stop(success=True)
    ep = store.get_episode(idx)
    np.testing.assert_array_equal(ep["observation.images.front"][:, 0, 0, 0], [0, 1, 3])
    np.testing.assert_allclose(ep["action"][:, 0], [0.0, 0.1, 0.3], rtol=1e-6)
    store.close()


def test_stop_settles_the_waiting_steps_and_discard_forgets_them(tmp_path):
    store = TrajectoryStore.create(tmp_path / "h.zarr", schema_for_rig(RIG))
    rec = EpisodeRecorder(store, ObservationAssembler(("front",), max_skew_ms=150), task="put the cube in the bowl",
                          obs_grace_s=5.0)
    rec.start()
    _feed(rec, 0, 0)
    assert rec.on_executed(np.zeros(7, np.float32), 0, "sim:scripted", now=1.0)   # complete: recorded at once
    rec.assembler.add_state(600 * MS, np.ones(14, np.float32), 600 * MS + 1)
    rec.on_executed(np.zeros(7, np.float32), 600 * MS, "sim:scripted", now=1.2)   # its frame never comes
    idx = rec.stop(success=False)                     # the episode ends: what is incomplete now is dropped
    assert store.get_episode(idx)["action"].shape == (1, 7) and rec.n_dropped == 1 and rec.n_pending == 0
    rec.start()
    rec.on_executed(np.zeros(7, np.float32), 1200 * MS, "sim:scripted", now=2.0)
    rec.discard()
    assert rec.n_pending == 0 and store.n_episodes == 1
    with pytest.raises(ValueError, match="obs_grace_s"):
        EpisodeRecorder(store, rec.assembler, task="t", obs_grace_s=-1.0)
    store.close()
