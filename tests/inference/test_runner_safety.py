"""PolicyRunner admission and runtime faults (review B4, B5; tests T19, T20, T22).

Admission: paths confined to the checkpoint roots (symlinks and `..` resolved), versions only move forward,
policy_type pinned, rollback the only way back. Runtime: a raising or NaN-producing policy never escapes
step(); the runner holds that tick and falls back to the version that ran before, or disables itself.
"""

import dataclasses
import os
import shutil

import numpy as np
import pytest

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import (
    EVENT_ACTIVATED,
    EVENT_FAULT,
    EVENT_REJECTED,
    STATE_ACTING,
    STATE_DISABLED,
    PolicyRunner,
)
from robot_stack.policies.checkpoint import load_policy


def drain(runner):
    out = []
    while not runner.events.empty():
        out.append(runner.events.get_nowait())
    return out


@pytest.fixture
def root(tmp_path):
    return tmp_path / "ckpt"


def _runner(schema, root, **kw):
    return PolicyRunner(schema, checkpoint_roots=[root], **kw)


def _activate(runner, update, obs):
    assert runner.request_load(update)
    assert runner.wait_idle(30)
    action = runner.step(obs)
    assert action is not None and runner.active_version == update.version
    return action


def _refused(runner, update, match):
    assert runner.request_load(update) is False
    (kind, payload), = drain(runner)
    assert kind == EVENT_REJECTED and payload.version == update.version
    assert match in payload.reason, payload.reason
    return payload.reason


# ---- T19: policy_update fuzz ----------------------------------------------------------------------

def test_paths_outside_the_roots_are_refused(save_version, schema, obs, root, tmp_path):
    v1 = save_version(1)
    runner = _runner(schema, root)
    try:
        _activate(runner, make_update(v1), obs)
        drain(runner)
        v2 = save_version(2)
        good = make_update(v2)
        # A copy outside the root, announced directly.
        outside = tmp_path / "elsewhere" / "v0002"
        shutil.copytree(v2, outside)
        reason = _refused(runner, dataclasses.replace(good, path=str(outside)), "outside the allowed checkpoint roots")
        assert str(root) in reason and str(outside) in reason
        # `..` that climbs out of the root.
        dotted = f"{root}/../elsewhere/v0002"
        _refused(runner, dataclasses.replace(good, path=dotted), "outside the allowed checkpoint roots")
        # A symlink inside the root that points outside it.
        link = root / "v0002-link"
        link.symlink_to(outside, target_is_directory=True)
        _refused(runner, dataclasses.replace(good, path=str(link)), str(outside))
        # A relative path (it would depend on the node's working directory).
        _refused(runner, dataclasses.replace(good, path="data/ckpt/v0002"), "is relative")
        assert runner.active_version == 1 and runner.stats.rejected == 4
        # The real one, inside the root, still loads.
        _activate(runner, good, obs)
    finally:
        runner.close()


def test_symlinked_model_file_pointing_outside_is_refused(save_version, schema, obs, root, tmp_path):
    runner = _runner(schema, root)
    try:
        v1 = save_version(1)
        model = v1 / "model.safetensors"
        foreign = tmp_path / "foreign.safetensors"
        shutil.move(model, foreign)
        model.symlink_to(foreign)  # same bytes, so the hashes match: only the confinement catches it
        assert runner.request_load(make_update(v1))
        assert runner.wait_idle(30)
        (kind, payload), = drain(runner)
        assert kind == EVENT_REJECTED and "model.safetensors resolves to" in payload.reason
        assert runner.step(obs) is None and runner.active_version is None
    finally:
        runner.close()


def test_versions_only_move_forward_and_policy_type_is_pinned(save_version, schema, obs, root):
    v1, v2 = make_update(save_version(1)), make_update(save_version(2))
    runner = _runner(schema, root)
    try:
        _activate(runner, v2, obs)
        drain(runner)
        _refused(runner, v1, "version 1 is not newer than v2")
        # Same version, different bytes (a re-trained v2): equal is refused too.
        _refused(runner, dataclasses.replace(v2, sha256="f" * 64), "version 2 is not newer than v2")
        _refused(runner, dataclasses.replace(make_update(save_version(3)), policy_type="diffusion"),
                 "policy_type 'diffusion' is not the configured 'bc_conv'")
        assert runner.active_version == 2
    finally:
        runner.close()

    runner = _runner(schema, root, policy_type="diffusion")
    try:
        _refused(runner, v1, "policy_type 'bc_conv' is not the configured 'diffusion'")
    finally:
        runner.close()


def test_rollback_is_the_only_way_back(save_version, schema, obs, root):
    v1, v2, v3 = (make_update(save_version(v)) for v in (1, 2, 3))
    runner = _runner(schema, root)
    try:
        a1 = _activate(runner, v1, obs)
        _activate(runner, v2, obs)
        drain(runner)
        target = runner.rollback(caller="test")
        assert target.version == 1
        assert runner.wait_idle(30)
        np.testing.assert_array_equal(runner.step(obs), a1)
        assert runner.active_version == 1
        (kind, payload), = drain(runner)
        assert kind == EVENT_ACTIVATED and "rollback by test from v2" in payload.reason
        # The version rolled back from is not re-accepted when it is replayed; a newer one is.
        _refused(runner, v2, "not newer than v2")
        _activate(runner, v3, obs)
        with pytest.raises(ValueError, match=r"named v7.*good versions \[1, 2, 3\]"):
            runner.rollback(version=7)
        assert runner.rollback(version=2, caller="test").version == 2
        assert runner.wait_idle(30) and runner.step(obs) is not None and runner.active_version == 2
    finally:
        runner.close()


def test_rollback_with_nothing_to_go_back_to(save_version, schema, obs, root):
    runner = _runner(schema, root)
    try:
        with pytest.raises(ValueError, match="no good version to roll back to"):
            runner.rollback()
        _activate(runner, make_update(save_version(1)), obs)
        with pytest.raises(ValueError, match="active v1, good versions \\[1\\]"):
            runner.rollback()
    finally:
        runner.close()


# ---- T22: the checkpoint changes between the announcement and the load ---------------------------

def test_files_swapped_between_announcement_and_load_are_rejected(save_version, schema, obs, root):
    v1 = save_version(1)
    update = make_update(v1)
    other = save_version(9, seed=123)

    def swapping_loader(path, **kw):  # the bytes change after the manifest check, before the load
        shutil.copy(other / "model.safetensors", path / "model.safetensors")
        return load_policy(path, **kw)

    runner = _runner(schema, root, loader=swapping_loader)
    try:
        runner.request_load(update)
        assert runner.wait_idle(30)
        (kind, payload), = drain(runner)
        assert kind == EVENT_REJECTED and "model.safetensors: sha256" in payload.reason
        assert runner.active_version is None
    finally:
        runner.close()


def test_directory_symlink_retargeted_after_admission_loads_what_was_admitted(save_version, schema, obs, root,
                                                                                tmp_path):
    """The runner loads from the path it resolved at load time and checks every file there, so pointing a
    symlink elsewhere mid-load cannot smuggle in a directory outside the roots."""
    v1 = save_version(1)
    link = root / "current"
    link.symlink_to(v1, target_is_directory=True)
    outside = tmp_path / "outside"
    shutil.copytree(v1, outside)

    def retargeting_loader(path, **kw):
        os.unlink(link)
        link.symlink_to(outside, target_is_directory=True)
        assert os.path.realpath(path) == os.path.realpath(v1)  # already resolved before the retarget
        return load_policy(path, **kw)

    runner = _runner(schema, root, loader=retargeting_loader)
    try:
        _activate(runner, dataclasses.replace(make_update(v1), path=str(link)), obs)
    finally:
        runner.close()


# ---- T20: runtime faults ---------------------------------------------------------------------------

class _Broken:
    """Wraps a loaded policy; from `after` calls on, select_action raises or returns NaN (as `mode` says)."""

    def __init__(self, policy, mode, after=0):
        self.policy, self.mode, self.after, self.calls = policy, mode, after, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def select_action(self, obs):
        self.calls += 1
        if self.calls <= self.after:
            return self.policy.select_action(obs)
        if self.mode == "raise":
            raise RuntimeError("CUDA error: device-side assert triggered")
        out = np.asarray(self.policy.select_action(obs), dtype=np.float32).copy()
        out[0] = np.nan if self.mode == "nan" else 10.0  # "far": metres per step, off the runner's limits
        return out


def _breaking_loader(mode, bad_versions):
    def loader(path, **kw):
        policy, manifest = load_policy(path, **kw)
        if manifest.version in bad_versions:
            policy = _Broken(policy, mode, after=1)  # the first forward pass succeeds; live ticks then fail
        return policy, manifest
    return loader


def test_raising_policy_falls_back_to_the_previous_version(save_version, schema, obs, root):
    runner = _runner(schema, root, loader=_breaking_loader("raise", {2}))
    try:
        a1 = _activate(runner, make_update(save_version(1)), obs)
        runner.request_load(make_update(save_version(2)))
        assert runner.wait_idle(30)
        drain(runner)
        assert runner.step(obs) is None  # v2 swapped in, raised: no action this tick
        kinds = [(k, p.version) for k, p in drain(runner)]
        assert kinds == [(EVENT_ACTIVATED, 2), (EVENT_FAULT, 2), (EVENT_ACTIVATED, 1)]
        assert runner.active_version == 1 and runner.stats.policy_exceptions == 1
        health = runner.health()
        assert health["state"] == STATE_ACTING and "v2 faulted" in health["reason"]
        assert "RuntimeError: CUDA error" in health["reason"] and health["good_versions"] == [1]
        np.testing.assert_array_equal(runner.step(obs), a1)  # the next tick acts with v1 again
    finally:
        runner.close()


@pytest.mark.parametrize("mode", ["nan", "far"])
def test_bad_actions_n_in_a_row_fall_back(save_version, schema, obs, root, mode):
    limits = (np.array([-0.06] * 3 + [-0.4] * 3 + [0.0]), np.array([0.06] * 3 + [0.4] * 3 + [1.0]))
    runner = _runner(schema, root, loader=_breaking_loader(mode, {2}), max_bad_actions=3, action_limits=limits)
    try:
        a1 = _activate(runner, make_update(save_version(1)), obs)
        runner.request_load(make_update(save_version(2)))
        assert runner.wait_idle(30)
        for _ in range(2):
            assert runner.step(obs) is None
            assert runner.active_version == 2  # below N: held, not yet replaced
        assert runner.step(obs) is None
        assert runner.active_version == 1 and runner.stats.held_nonfinite == 3
        assert "3 bad actions in a row" in runner.health()["reason"]
        np.testing.assert_array_equal(runner.step(obs), a1)
    finally:
        runner.close()


def test_fault_with_no_good_version_disables_and_holds(save_version, schema, obs, root):
    runner = _runner(schema, root, loader=_breaking_loader("raise", {1}))
    try:
        runner.request_load(make_update(save_version(1)))
        assert runner.wait_idle(30)
        assert runner.step(obs) is None
        health = runner.health()
        assert health["state"] == STATE_DISABLED and "no earlier good version" in health["reason"]
        assert runner.active_version == 1 and [runner.step(obs) for _ in range(3)] == [None] * 3
        # A fixed, newer checkpoint brings it back.
        _activate(runner, make_update(save_version(2)), obs)
        assert runner.health()["state"] == STATE_ACTING
    finally:
        runner.close()


def test_max_bad_actions_must_be_positive(schema):
    with pytest.raises(ValueError, match="max_bad_actions must be >= 1"):
        PolicyRunner(schema, max_bad_actions=0)
    with pytest.raises(ValueError, match="checkpoint_roots is empty"):
        PolicyRunner(schema, checkpoint_roots=[])
