"""diffusion_policy ReplayBuffer (zarr v2): lossless round trip, layout diffusion_policy can read, foreign import."""

from __future__ import annotations

import json

import numcodecs
import numpy as np
import pytest
import zarr
from fmt_data import assert_same_episodes, fill_store

from robot_stack.store import StoreSchemaError, TrajectoryStore
from robot_stack.store.formats import FormatError, export_store, import_into


def test_round_trip_is_exact(tmp_path):
    src = fill_store(tmp_path / "src")
    calls = []
    out = export_store(src, "diffusion_policy_zarr", tmp_path / "dp.zarr", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)
    # What diffusion_policy's ReplayBuffer reads: zarr v2, data/<key> concatenated, meta/episode_ends.
    zattrs = json.loads((out / "data" / "front_image" / ".zarray").read_text())
    assert zattrs["zarr_format"] == 2 and zattrs["chunks"] == [1, 32, 32, 3]
    root = zarr.open_group(str(out), mode="r")
    assert root["meta/episode_ends"][:].tolist() == [10, 18, 30]
    assert root["data/action"].shape == (30, 7) and root["data/robot_state"].dtype == np.float32
    new = import_into(tmp_path / "dst", "diffusion_policy_zarr", out, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.to_json() == src.schema.to_json()
        assert_same_episodes(src, dst, new)
        assert [dst.episode_meta(j).notes for j in new] == [src.episode_meta(i).notes for i in range(3)]
    # A second import appends to the existing store.
    assert import_into(tmp_path / "dst", "diffusion_policy_zarr", out, fsync=False) == [3, 4, 5]
    src.close()


def test_export_subset_of_episodes(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "diffusion_policy_zarr", tmp_path / "dp.zarr", episodes=[2, 0])
    new = import_into(tmp_path / "dst", "diffusion_policy_zarr", out, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert [dst.episode_meta(j).task for j in new] == [src.episode_meta(2).task, src.episode_meta(0).task]
        np.testing.assert_array_equal(dst.get_episode(new[0])["action"], src.get_episode(2)["action"])
    src.close()


def test_foreign_replay_buffer_gets_a_derived_schema(tmp_path):
    """A ReplayBuffer written like diffusion_policy's own (no robot_stack attributes)."""
    root = zarr.open_group(str(tmp_path / "pusht.zarr"), mode="w", zarr_format=2)
    rng = np.random.default_rng(0)
    blosc = numcodecs.Blosc("lz4")
    root.create_group("data").create_array("img", data=rng.integers(0, 255, (7, 8, 8, 3), dtype=np.uint8),
                                           chunks=(1, 8, 8, 3), compressors=blosc)
    root["data"].create_array("state", data=rng.standard_normal((7, 5)).astype(np.float32), compressors=blosc)
    root["data"].create_array("action", data=rng.standard_normal((7, 2)).astype(np.float32), compressors=blosc)
    root.create_group("meta").create_array("episode_ends", data=np.array([3, 7], dtype=np.int64), compressors=blosc)
    new = import_into(tmp_path / "dst", "diffusion_policy_zarr", tmp_path / "pusht.zarr", control_hz=10.0,
                      task="push the T", fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert new == [0, 1] and dst.episode_slice(1) == slice(3, 7)
        assert set(dst.schema.features) == {"img", "observation.state", "action"}
        assert dst.episode_meta(0).source == "import" and dst.episode_meta(0).task == "push the T"
        np.testing.assert_array_equal(dst.get_episode(1)["action"], root["data/action"][3:7])


def test_malformed_sources_name_the_fix(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        import_into(tmp_path / "dst", "diffusion_policy_zarr", tmp_path / "nope.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(FormatError, match="meta/episode_ends.*not a diffusion_policy_zarr layout"):
        import_into(tmp_path / "dst", "diffusion_policy_zarr", tmp_path / "empty.zarr")
    root = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w", zarr_format=2)
    root.create_group("data").create_array("action", data=np.zeros((4, 7), np.float32))
    root.create_group("meta").create_array("episode_ends", data=np.array([2, 9], dtype=np.int64))
    with pytest.raises(FormatError, match="points past the data arrays"):
        import_into(tmp_path / "dst", "diffusion_policy_zarr", tmp_path / "bad.zarr")
    assert not (tmp_path / "dst").exists()  # nothing is created from a source that does not open


def test_schema_mismatch_with_existing_store_names_the_key(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "diffusion_policy_zarr", tmp_path / "dp.zarr")
    src.close()
    root = zarr.open_group(str(out), mode="r+")
    meta = dict(root.attrs["robot_stack"])
    meta["schema"]["features"]["action"]["shape"] = [6]
    root.attrs["robot_stack"] = meta
    fill_store(tmp_path / "dst").close()
    with pytest.raises(StoreSchemaError, match=r"features\['action'\]"):
        import_into(tmp_path / "dst", "diffusion_policy_zarr", out, fsync=False)
