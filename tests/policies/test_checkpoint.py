"""Checkpoint format: atomic save, hash verification, schema check, safetensors-only load."""

import json

import numpy as np
import pytest
import torch

from robot_stack.policies import checkpoint as ckpt_mod
from robot_stack.policies.checkpoint import (
    CheckpointError,
    SchemaMismatchError,
    latest_checkpoint,
    load_policy,
    save_checkpoint,
    sha256_file,
    verify_checkpoint,
)


def test_round_trip_gives_identical_actions(policy, normalizer, schema, obs, tmp_path, monkeypatch):
    path = save_checkpoint(policy, normalizer, schema, tmp_path, version=1, step=123)
    assert path == tmp_path / "v0001" and latest_checkpoint(tmp_path) == path
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "manifest.json", "model.safetensors",
                                                     "normalizer.json", "schema.json"]
    assert json.loads((path / "config.json").read_text())["type"] == "bc_conv"
    manifest = verify_checkpoint(path)
    assert (manifest.version, manifest.step, manifest.parent_version, manifest.policy_type) == (1, 123, None, "bc_conv")
    assert manifest.files["model.safetensors"] == sha256_file(path / "model.safetensors")

    def no_pickles(*a, **k):
        raise AssertionError("checkpoints must never be unpickled")

    monkeypatch.setattr(torch, "load", no_pickles)
    loaded, m2 = load_policy(tmp_path, expected_schema=schema)  # the root resolves through `latest`
    assert m2 == manifest
    np.testing.assert_array_equal(loaded.select_action(obs), policy.select_action(obs))

    v2 = save_checkpoint(policy, normalizer, schema, tmp_path, version=2, step=200, parent=1)
    assert latest_checkpoint(tmp_path) == v2 and verify_checkpoint(v2).parent_version == 1
    with pytest.raises(CheckpointError, match="versions must increase"):
        save_checkpoint(policy, normalizer, schema, tmp_path, version=2, step=300)


@pytest.mark.parametrize("name", ["model.safetensors", "normalizer.json", "schema.json", "config.json"])
def test_flipped_byte_is_named(policy, normalizer, schema, tmp_path, name):
    path = save_checkpoint(policy, normalizer, schema, tmp_path, version=1, step=1)
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{name}: sha256 .* does not match") as e:
        load_policy(path, expected_schema=schema)
    assert "copy checkpoint v0001 again" in str(e.value)


def test_missing_file_and_missing_manifest(policy, normalizer, schema, tmp_path):
    path = save_checkpoint(policy, normalizer, schema, tmp_path, version=1, step=1)
    (path / "normalizer.json").unlink()
    with pytest.raises(CheckpointError, match="normalizer.json is missing"):
        verify_checkpoint(path)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        verify_checkpoint(path)


def test_wrong_schema_names_the_key(policy, normalizer, schema, schema_factory, tmp_path):
    path = save_checkpoint(policy, normalizer, schema, tmp_path, version=1, step=1)
    with pytest.raises(SchemaMismatchError, match=r"observation.images.front.*uint8 \(24, 32, 3\).*\(48, 64, 3\)"):
        load_policy(path, expected_schema=schema_factory((48, 64)))
    with pytest.raises(SchemaMismatchError, match="observation.images.wrist.*does not provide"):
        load_policy(path, expected_schema=schema_factory(cameras=("front",)))
    # A robot with an extra camera the policy does not read is fine.
    load_policy(path, expected_schema=schema_factory(cameras=("front", "wrist", "side")))


def test_crash_mid_save_keeps_latest_on_previous(policy, normalizer, schema, tmp_path, monkeypatch, obs):
    v1 = save_checkpoint(policy, normalizer, schema, tmp_path, version=1, step=1)
    expected = policy.select_action(obs)
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)

    def crash(tmp_dir, final_dir):  # everything is written to the temp dir; the rename never happens
        assert (tmp_dir / "manifest.json").is_file()
        raise OSError("simulated power loss")

    monkeypatch.setattr(ckpt_mod, "_publish", crash)
    with pytest.raises(OSError, match="power loss"):
        save_checkpoint(policy, normalizer, schema, tmp_path, version=2, step=2, parent=1)
    assert latest_checkpoint(tmp_path) == v1
    assert not (tmp_path / "v0002").exists()
    loaded, manifest = load_policy(tmp_path, expected_schema=schema)
    assert manifest.version == 1
    np.testing.assert_array_equal(loaded.select_action(obs), expected)

    # A hard crash leaves its temp dir behind; the next save clears it and succeeds.
    monkeypatch.undo()
    (tmp_path / ".tmp-v0002-dead").mkdir()
    v2 = save_checkpoint(policy, normalizer, schema, tmp_path, version=2, step=2, parent=1)
    assert latest_checkpoint(tmp_path) == v2
    assert not list(tmp_path.glob(".tmp-*"))
