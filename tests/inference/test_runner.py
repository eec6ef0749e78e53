"""PolicyRunner: background load, swap at the start of a tick, rejected checkpoints keep the old policy."""

import dataclasses
import re
import threading

import numpy as np
import pytest

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import EVENT_ACTIVATED, EVENT_REJECTED, PolicyRunner
from robot_stack.policies.checkpoint import PolicySchema, load_policy
from robot_stack.types import rig_features


def drain(runner):
    out = []
    while not runner.events.empty():
        out.append(runner.events.get_nowait())
    return out


def test_no_policy_then_first_load(save_version, schema, obs):
    seen = []
    runner = PolicyRunner(schema, on_event=lambda kind, payload: seen.append((kind, payload)))
    assert runner.step(obs) is None and runner.active_version is None
    runner.request_load(make_update(save_version(1)))
    assert runner.wait_idle(30)
    action = runner.step(obs)  # the staged policy is swapped in at the start of this tick
    assert action.shape == (7,) and np.all(np.isfinite(action))
    assert runner.active_version == 1
    assert [(k, p.version, p.status) for k, p in seen] == [(EVENT_ACTIVATED, 1, "ok")]
    stats = runner.stats
    assert (stats.ticks, stats.swaps, stats.rejected) == (2, 1, 0)
    runner.close()


def test_swap_between_ticks_without_blocking(save_version, schema, obs):
    v1, v2 = save_version(1), save_version(2)
    gate, entered = threading.Event(), threading.Event()

    def slow_loader(path, **kw):  # a load that takes as long as the test wants
        entered.set()
        assert gate.wait(30)
        return load_policy(path, **kw)

    runner = PolicyRunner(schema)
    runner.request_load(make_update(v1))
    assert runner.wait_idle(30)
    a1 = runner.step(obs)
    expected_a2 = load_policy(v2)[0].select_action(obs)
    assert not np.allclose(a1, expected_a2)

    runner._loader = slow_loader
    runner.request_load(make_update(v2))
    assert entered.wait(30)
    # The load is in progress (blocked inside the loader): ticks still act, with the old policy.
    for _ in range(3):
        np.testing.assert_array_equal(runner.step(obs), a1)
    assert runner.active_version == 1 and not runner.wait_idle(0.01)
    gate.set()
    assert runner.wait_idle(30)
    # The arm follows v2 from this tick; the gripper is the held decision (DESIGN.md §3), so it takes v2's decision
    # once the last change has been held 5 ticks (a change at tick 1 here: from tick 6 on).
    a2 = runner.step(obs)
    np.testing.assert_array_equal(a2[:6], expected_a2[:6])
    assert runner.active_version == 2
    assert runner.step(obs)[6] == float(expected_a2[6] > 0.5)
    assert [(k, p.version) for k, p in drain(runner)] == [(EVENT_ACTIVATED, 1), (EVENT_ACTIVATED, 2)]
    assert runner.stats.swaps == 2 and runner.stats.ticks == 6
    runner.close()


def _loaded_runner(save_version, schema, obs, **kw):
    runner = PolicyRunner(schema, **kw)
    runner.request_load(make_update(save_version(1)))
    assert runner.wait_idle(30)
    good = runner.step(obs)
    drain(runner)
    return runner, good


def _reject(runner, update, obs, good, match):
    runner.request_load(update)
    assert runner.wait_idle(30)
    np.testing.assert_array_equal(runner.step(obs), good)  # the last good policy keeps acting
    assert runner.active_version == 1
    (kind, payload), = drain(runner)
    assert kind == EVENT_REJECTED and payload.status == "rejected" and payload.version == update.version
    assert re.search(match, payload.reason), payload.reason


def test_tampered_checkpoint_is_rejected(save_version, schema, obs):
    runner, good = _loaded_runner(save_version, schema, obs)
    v2 = save_version(2)
    update = make_update(v2)
    data = bytearray((v2 / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (v2 / "model.safetensors").write_bytes(bytes(data))
    _reject(runner, update, obs, good, r"model\.safetensors: sha256")
    assert runner.stats.rejected == 1
    runner.close()


def test_non_finite_first_action_is_rejected(save_version, schema, obs):
    runner, good = _loaded_runner(save_version, schema, obs)
    _reject(runner, make_update(save_version(2, nan=True)), obs, good, "first action is not finite")
    runner.close()


def test_schema_mismatch_and_changed_manifest_are_rejected(save_version, schema, obs):
    runner, good = _loaded_runner(save_version, schema, obs)
    update = make_update(save_version(2))
    _reject(runner, dataclasses.replace(update, sha256="0" * 64), obs, good, "not the announced")
    # The live robot lost its wrist camera: the checkpoint's schema no longer fits.
    runner.expected_schema = PolicySchema.from_features(rig_features({"front": (24, 32)}, n_joints=6))
    _reject(runner, update, obs, good, "observation.images.wrist")
    runner.close()


def test_action_limits_are_checked(save_version, schema, obs):
    runner, good = _loaded_runner(save_version, schema, obs)
    runner.action_limits = (np.full(7, -1e-9), np.full(7, 1e-9))  # no motion and no gripper allowed
    runner.request_load(make_update(save_version(2)))
    assert runner.wait_idle(30)
    (kind, payload), = drain(runner)
    assert kind == EVENT_REJECTED and "runner's action limits" in payload.reason
    runner.action_limits = None  # v1's own actions would now be held too (the limits apply every tick)
    np.testing.assert_array_equal(runner.step(obs), good)
    assert runner.active_version == 1
    runner.close()


def test_repeated_announcement_of_active_version_is_ignored(save_version, schema, obs):
    runner, _ = _loaded_runner(save_version, schema, obs)
    runner.request_load(runner.active)
    assert runner.wait_idle(5) and runner.stats.swaps == 1 and not drain(runner)
    with pytest.raises(KeyError, match="observation.state"):
        runner.step({k: v for k, v in obs.items() if k != "observation.state"})
    runner.close()


def test_idle_runner_activates_staged_policy_without_a_tick(save_version, schema, obs):
    """A node that is not ticking (control disabled) can still report the new version as active."""
    runner = PolicyRunner(schema)
    try:
        assert runner.activate_staged() is False  # nothing staged
        runner.request_load(make_update(save_version(1)))
        assert runner.wait_idle(30)
        assert runner.active_version is None  # verified and staged, not yet swapped
        assert runner.activate_staged() is True
        assert runner.active_version == 1 and runner.stats.ticks == 0
        kinds = [k for k, _ in drain(runner)]
        assert kinds == [EVENT_ACTIVATED]
        assert runner.step(obs) is not None and runner.stats.swaps == 1
    finally:
        runner.close()
