"""Disk full under the recorder (review C4, test T29): a store write failing with ENOSPC (injected at the
store's own crash points, robot_stack/store/faults.py) stops recording with a reason that names the fault,
the free space needed and how to resume; nothing raises into the caller (the ROS node), committed episodes
stay intact, and recording resumes with recorder start once the disk has room."""

from __future__ import annotations

import errno
import time

import numpy as np
import pytest
from omegaconf import OmegaConf

from robot_stack.store import TrajectoryStore, faults
from robot_stack.store.align import ObservationAssembler
from robot_stack.store.recorder import EpisodeRecorder, RecorderError, schema_for_rig

MS = 1_000_000
RIG = OmegaConf.create({"robot": "wx250s", "control_hz": 5.0, "action_space": "ee_delta", "n_joints": 6,
                        "cameras": {"front": {"height": 8, "width": 8}}})


@pytest.fixture
def recorder(tmp_path):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema_for_rig(RIG), fsync=False)
    rec = EpisodeRecorder(store, ObservationAssembler(("front",), max_skew_ms=150), task="t", flush_every=2)
    yield rec
    faults.hook = None
    store.close()


def _feed(rec, t_ms, value):
    rec.assembler.add_state(t_ms * MS, np.full(14, value, np.float32), t_ms * MS + 1)
    rec.assembler.add_image("front", (t_ms + 50) * MS, np.full((8, 8, 3), value, np.uint8), (t_ms + 51) * MS)


def _record(rec, n, t0=0):
    ok = []
    for k in range(n):
        t = t0 + 200 * k
        _feed(rec, t, k)
        ok.append(rec.on_executed(np.full(7, 0.01, np.float32), t * MS, "teleop"))
    return ok


def _record_until_refused(rec, t0=0, limit=400):
    """Steps until one is refused (the flusher's error surfaces at a later add_step); returns how many."""
    for k in range(limit):
        if not _record(rec, 1, t0=t0 + 200 * k)[0]:
            return k
        time.sleep(0.002)  # let the background flusher reach the full disk
    raise AssertionError(f"{limit} steps recorded on a full disk")


def _disk_full_at(phase):
    def hook(p):
        if p == phase:
            raise OSError(errno.ENOSPC, "No space left on device")
    return hook


@pytest.mark.parametrize("phase", ["data_written", "meta_row"])
def test_disk_full_stops_recording_with_a_reason_and_resumes(recorder, phase):
    recorder.start()
    assert all(_record(recorder, 3))
    first = recorder.stop(success=True)  # one committed episode that must survive
    before = recorder.store.get_episode(first)

    faults.hook = _disk_full_at(phase)
    recorder.start()
    if phase == "data_written":  # the background flusher hits it; a later step reports it
        _record_until_refused(recorder, t0=10_000)
        assert not recorder.recording
    else:  # the commit hits it: stop() says why instead of raising a store error into the node
        assert all(_record(recorder, 3, t0=10_000))
        with pytest.raises(RecorderError, match="committing the episode failed"):
            recorder.stop(success=True)
        assert not recorder.recording
    fault = recorder.fault
    assert fault and "disk full" in fault and "No space left on device" in fault
    assert "free space on that disk" in fault.lower() and "MB free now" in fault and "recorder/start" in fault
    assert _record(recorder, 2, t0=20_000) == [False, False]  # steps after the fault are not recorded

    faults.hook = None  # space was freed
    store = TrajectoryStore.open(recorder.store.path, mode="r")
    try:
        assert store.n_episodes == 1
        for k, v in before.items():
            np.testing.assert_array_equal(store.get_episode(0)[k], v, err_msg=k)
    finally:
        store.close()
    recorder.start()
    assert recorder.fault is None and all(_record(recorder, 3, t0=30_000))
    assert recorder.stop(success=True) == 1


def test_resume_is_refused_while_the_disk_is_still_full(recorder, monkeypatch):
    faults.hook = _disk_full_at("data_written")
    recorder.start()
    _record_until_refused(recorder)
    assert recorder.fault
    faults.hook = None
    recorder.resume_steps = 10**15  # "needs" more than any disk has: reads as still full
    with pytest.raises(RecorderError, match=r"recording stopped.*still only .* MB free, need"):
        recorder.start()
    assert not recorder.recording and recorder.fault
