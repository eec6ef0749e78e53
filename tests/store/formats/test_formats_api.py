"""The public entry points the CLI calls: FORMATS, export_store, import_into and their errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fmt_data import fill_store

from robot_stack.store import StoreSchema, TrajectoryStore
from robot_stack.store.formats import FORMATS, FormatError, export_store, import_into
from robot_stack.types import rig_features


def test_formats_are_the_four_documented():
    assert FORMATS == ("lerobot_v3", "robomimic_hdf5", "diffusion_policy_zarr", "ros2_bag")


def test_import_is_light():
    code = ("import sys, robot_stack.store.formats; "
            "print([m for m in ('av', 'h5py', 'pyarrow', 'rosbags', 'rclpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_format_lists_formats(tmp_path):
    src = fill_store(tmp_path / "src")
    with pytest.raises(FormatError, match="unknown format 'hdf5'; choose one of lerobot_v3, robomimic_hdf5"):
        export_store(src, "hdf5", tmp_path / "out")
    src.close()
    with pytest.raises(FormatError, match="unknown format 'rlds'"):
        import_into(tmp_path / "dst", "rlds", tmp_path / "src")


def test_export_refuses_existing_output_bad_episodes_and_options(tmp_path):
    src = fill_store(tmp_path / "src")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(FormatError, match="already exists; choose a new output path"):
        export_store(src, "robomimic_hdf5", tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    with pytest.raises(FormatError, match="episode 7 is not in store"):
        export_store(src, "robomimic_hdf5", tmp_path / "a.hdf5", episodes=[0, 7])
    with pytest.raises(FormatError, match=r"does not take option\(s\) \['crf'\]; it takes \['split'\]"):
        export_store(src, "robomimic_hdf5", tmp_path / "a.hdf5", crf=3)
    with pytest.raises(FormatError, match=r"import does not take option\(s\) \['gap_s'\]"):
        import_into(tmp_path / "dst", "robomimic_hdf5", tmp_path / "src", gap_s=1.0)
    src.close()


def test_import_into_store_with_other_features_names_the_key(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "robomimic_hdf5", tmp_path / "d.hdf5")
    src.close()
    other = StoreSchema(robot="wx250s", control_hz=10.0, action_space="ee_delta",
                        features=rig_features({"front": (32, 32)}, n_joints=6), cameras=("front",))
    TrajectoryStore.create(tmp_path / "dst", other, fsync=False).close()
    with pytest.raises(Exception, match=r"observation\.images\.wrist") as e:
        import_into(tmp_path / "dst", "robomimic_hdf5", out, fsync=False)
    assert "new store" in str(e.value)  # the fix is named too
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.n_episodes == 0
