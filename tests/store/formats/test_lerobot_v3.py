"""LeRobotDataset v3: layout, lossless low-dim + PSNR-bounded video round trip, foreign datasets, bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from fmt_data import EPISODE_STEPS, assert_same_episodes, fill_store, psnr_db

from robot_stack.store import TrajectoryStore
from robot_stack.store.formats import FormatError, export_store, import_into

# Smooth 32x32 / 16x24 frames through H.264 yuv420p at crf 18 measure ~32-33 dB; chroma subsampling, not
# the crf, bounds it. A decoding bug (wrong frame, shifted episode, swapped channels) drops far below 20 dB.
MIN_PSNR_DB = 28.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lerobot")
    src = fill_store(tmp / "src")
    out = export_store(src, "lerobot_v3", tmp / "ds")
    yield src, out, tmp
    src.close()


def test_layout_follows_lerobot_v3(exported):
    src, out, _ = exported
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10.0
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(EPISODE_STEPS) and info["total_tasks"] == 2
    front = info["features"]["observation.images.front"]
    assert front["dtype"] == "video" and front["shape"] == [32, 32, 3]
    assert front["info"]["video.codec"] == "h264" and front["info"]["video.pix_fmt"] == "yuv420p"
    assert info["features"]["action"]["names"][-1] == "gripper"
    assert info["features"]["timestamps.state.capture_ns"] == {"dtype": "int64", "shape": [1], "names": None}
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.column("index").to_pylist() == list(range(30))
    assert data.column("frame_index").to_pylist()[:11] == [*range(10), 0]
    assert data.column("episode_index").to_pylist()[10] == 1
    np.testing.assert_allclose(data.column("timestamp").to_numpy()[:3], [0.0, 0.1, 0.2], atol=1e-6)
    assert data.column("task_index").to_pylist()[10] == 1 and data.column("task_index").to_pylist()[20] == 0
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == list(EPISODE_STEPS)
    assert eps[1]["dataset_from_index"] == 10 and eps[1]["dataset_to_index"] == 18
    assert eps[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(1.0)
    assert eps[1]["tasks"] == ["take the cube out of the bowl"]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist() == ["put the cube in the bowl", "take the cube out of the bowl"]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    stats = json.loads((out / "meta/stats.json").read_text())
    np.testing.assert_allclose(stats["action"]["mean"], src.stats("action")["mean"], rtol=1e-6)
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert (out / "videos/observation.images.wrist/chunk-000/file-000.mp4").stat().st_size > 0


def test_round_trip_lowdim_exact_images_within_psnr(exported, tmp_path):
    src, out, _ = exported
    new = import_into(tmp_path / "dst", "lerobot_v3", out, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.to_json() == src.schema.to_json()
        assert_same_episodes(src, dst, new, image_psnr_db=MIN_PSNR_DB)
        # Per-frame too: a one-frame shift between episodes would hide in an episode-wide average.
        for i, j in zip(range(3), new, strict=True):
            a = src.get_episode(i)["observation.images.front"]
            b = dst.get_episode(j)["observation.images.front"]
            assert min(psnr_db(x, y) for x, y in zip(a, b, strict=True)) >= MIN_PSNR_DB - 3


def test_foreign_dataset_without_robot_stack_metadata(exported, tmp_path):
    _, out, _ = exported
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    (foreign / "meta/robot_stack.json").unlink()
    new = import_into(tmp_path / "dst", "lerobot_v3", foreign, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.robot == "wx250s" and dst.schema.control_hz == 10.0
        assert dst.schema.features["timestamps.state.capture_ns"].shape == ()
        assert dst.schema.features["observation.images.front"].shape == (32, 32, 3)
        assert [dst.episode_meta(j).task for j in new] == ["put the cube in the bowl",
                                                           "take the cube out of the bowl",
                                                           "put the cube in the bowl"]


def test_malformed_datasets_name_the_fix(exported, tmp_path):
    _, out, _ = exported
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="meta/info.json is missing: not a lerobot_v3 layout"):
        import_into(tmp_path / "dst", "lerobot_v3", tmp_path / "empty")
    old = tmp_path / "v21"
    shutil.copytree(out, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(FormatError, match="convert_dataset_v21_to_v30"):
        import_into(tmp_path / "dst", "lerobot_v3", old)
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    (cut / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    with pytest.raises(FormatError, match="file-000.mp4 is missing"):
        import_into(tmp_path / "dst2", "lerobot_v3", cut, fsync=False)
