"""robomimic HDF5: lossless round trip, the layout robomimic reads, filter keys, foreign files, bad inputs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from fmt_data import assert_same_episodes, fill_store

from robot_stack.store import TrajectoryStore
from robot_stack.store.formats import FormatError, export_store, import_into


def test_round_trip_is_exact_and_layout_is_robomimic(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "robomimic_hdf5", tmp_path / "demos.hdf5", split={"train": [0, 2], "valid": [1]})
    with h5py.File(out, "r") as f:
        assert f["data"].attrs["total"] == 30
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "wx250s"
        d0 = f["data/demo_0"]
        assert d0.attrs["num_samples"] == 10
        assert d0["obs/front_image"].shape == (10, 32, 32, 3) and d0["obs/robot_state"].shape == (10, 14)
        np.testing.assert_array_equal(d0["next_obs/robot_state"][:-1], d0["obs/robot_state"][1:])
        assert d0["rewards"][-1] == 1.0 and f["data/demo_1/rewards"][:].sum() == 0  # success, failure
        assert d0["dones"][:].tolist() == [0] * 9 + [1]
        assert [x.decode() for x in f["mask/train"][:]] == ["demo_0", "demo_2"]
        assert [x.decode() for x in f["mask/valid"][:]] == ["demo_1"]
    new = import_into(tmp_path / "dst", "robomimic_hdf5", out, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.to_json() == src.schema.to_json()
        assert_same_episodes(src, dst, new)
    src.close()


def test_split_naming_unexported_episode_is_refused(tmp_path):
    src = fill_store(tmp_path / "src")
    with pytest.raises(FormatError, match=r"split 'valid' names episodes \[1\]"):
        export_store(src, "robomimic_hdf5", tmp_path / "d.hdf5", episodes=[0, 2], split={"valid": [1]})
    src.close()


def test_foreign_file_success_from_rewards_and_filter_keys_in_notes(tmp_path):
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "lift.hdf5", "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for i, (n, r) in enumerate([(4, 1.0), (6, 0.0)]):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("obs/robot0_eef_pos", data=rng.standard_normal((n, 3)))
            g.create_dataset("obs/agentview_image", data=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
            g.create_dataset("actions", data=rng.standard_normal((n, 7)))
            g.create_dataset("rewards", data=np.r_[np.zeros(n - 1), r])
        f.create_dataset("mask/valid", data=np.array([b"demo_1"]))
    new = import_into(tmp_path / "dst", "robomimic_hdf5", tmp_path / "lift.hdf5", task="lift the cube", fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert new == [0, 1]
        assert dst.schema.robot == "Lift" and dst.schema.cameras == ("agentview",)
        assert set(dst.schema.features) == {"robot0_eef_pos", "observation.images.agentview", "action"}
        assert [dst.episode_meta(j).success for j in new] == [True, False]
        assert "filter keys: valid" in dst.episode_meta(1).notes
        assert dst.get_episode(1)["action"].dtype == np.float32


def test_malformed_files_name_the_fix(tmp_path):
    (tmp_path / "x.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        import_into(tmp_path / "dst", "robomimic_hdf5", tmp_path / "x.hdf5")
    with h5py.File(tmp_path / "y.hdf5", "w") as f:
        f.create_dataset("obs", data=np.zeros(3))
    with pytest.raises(FormatError, match="no 'data' group"):
        import_into(tmp_path / "dst", "robomimic_hdf5", tmp_path / "y.hdf5")
    with h5py.File(tmp_path / "z.hdf5", "w") as f:
        f.create_dataset("data/demo_0/obs/robot_state", data=np.zeros((3, 2)))
    with pytest.raises(FormatError, match="data/demo_0 has no 'actions'"):
        import_into(tmp_path / "dst", "robomimic_hdf5", tmp_path / "z.hdf5")
    assert not (tmp_path / "dst").exists()
