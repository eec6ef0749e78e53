"""Curation (exclude/include, split, compact, merge), incremental stats vs numpy, disk-full and read-only
errors, schema metadata, and the `robot-stack store` CLI through main(argv)."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import zarr
from store_data import make_episode, make_schema

from robot_stack.cli.main import main as cli_main
from robot_stack.store import StoreError, StoreSchema, StoreSchemaError, TrajectoryStore
from robot_stack.store import stats as stats_mod
from robot_stack.store.ops import compact, merge
from robot_stack.types import ACTION_KEY, STATE_KEY, FeatureSpec


def _fill(path, n, lengths=None, start=0):
    s = TrajectoryStore.open_or_create(path, make_schema(), fsync=False)
    for i in range(start, start + n):
        s.append_episode(make_episode(i, None if lengths is None else lengths[i - start]),
                         {"task": f"ep{i}", "source": "sim", "success": i % 3 != 0, "notes": f"note {i}"})
    return s


def test_exclude_include_split_compact_keep_identity(tmp_path):
    path = tmp_path / "s.zarr"
    s = _fill(path, 8)
    eps = {i: s.get_episode(i) for i in range(8)}
    ids = [s.episode_meta(i).episode_id for i in range(8)]
    assert len(set(ids)) == 8 and all(ids)
    s.exclude([1, 5])
    assert s.episodes() == [0, 2, 3, 4, 6, 7] and s.episodes(include_excluded=True) == list(range(8))
    r = TrajectoryStore.open(path, mode="r")  # another process's view sees edits after refresh
    r.refresh()
    assert r.excluded_episodes() == {1, 5}
    s.include([5])
    assert s.episodes() == [0, 2, 3, 4, 5, 6, 7]
    s.exclude([5])
    s.set_split(0.4, seed=11)
    split_by_id = {s.episode_meta(i).episode_id: s.split_of(i) for i in range(8)}
    assert set(split_by_id.values()) == {"train", "val"}
    # stable as the store grows: old assignments unchanged
    s.append_episode(make_episode(8), {"task": "ep8", "source": "sim"})
    assert {s.episode_meta(i).episode_id: s.split_of(i) for i in range(8)} == split_by_id
    s.close()
    r.close()

    res = compact(path, fsync=False)
    assert res["kept"] == 7 and res["dropped"] == 2
    assert not list(tmp_path.glob(".s.zarr.*"))  # no temp/old dirs left
    c = TrajectoryStore.open(path, mode="r")
    assert c.n_episodes == 7 and c.excluded_episodes() == set()
    kept = [0, 2, 3, 4, 6, 7]
    for new_i, old_i in enumerate(kept):
        got = c.get_episode(new_i)
        assert all(got[k].tobytes() == eps[old_i][k].tobytes() for k in got)
        assert c.episode_meta(new_i).episode_id == ids[old_i]
        assert c.split_of(new_i) == split_by_id[ids[old_i]]  # split survives compaction
        assert c.episode_meta(new_i).notes == f"note {old_i}"


def test_corrected_success_labels_apply_everywhere_stay_undoable_and_survive_compaction(tmp_path):
    """A person's correction replaces the recorded label wherever episode metadata is read (other processes after a
    refresh too), never rewrites the committed row, and survives compaction as an edit; a merge carries it."""
    path = tmp_path / "s.zarr"
    s = _fill(path, 6)        # recorded success: i % 3 != 0 -> F T T F T T
    assert s.episodes(success=False) == [0, 3]
    s.set_success([0], True)
    s.set_success([4], False, by="test")
    assert s.episode_meta(0).success is True and s.episode_meta(4).success is False
    assert s.recorded_meta(0).success is False and s.recorded_meta(4).success is True
    assert s.episodes(success=False) == [3, 4] and s.corrected_episodes() == {0: True, 4: False}
    r = TrajectoryStore.open(path, mode="r")
    r.refresh()
    assert r.episode_meta(0).success is True and r.info()["corrected_labels"] == {"0": True, "4": False}
    r.close()
    s.set_success([4], None)  # undo
    assert s.episode_meta(4).success is True and s.corrected_episodes() == {0: True}
    with pytest.raises(ValueError, match="True, False or None"):
        s.set_success([1], 1)
    s.exclude([2])
    s.close()
    compact(path, fsync=False)
    c = TrajectoryStore.open(path, mode="a")
    assert c.n_episodes == 5 and c.episode_meta(0).success is True and c.recorded_meta(0).success is False
    assert c.corrected_episodes() == {0: True}
    merged = tmp_path / "m.zarr"
    TrajectoryStore.create(merged, make_schema()).close()
    merge(merged, [path])
    with TrajectoryStore.open(merged, mode="r") as m:
        assert m.recorded_meta(0).success is True   # a merge bakes the correction in
    c.set_success([0], None)
    assert c.episode_meta(0).success is False
    c.close()


def test_merge_schema_checked(tmp_path):
    a, b = _fill(tmp_path / "a.zarr", 2), _fill(tmp_path / "b.zarr", 3, start=2)
    b.exclude([0])
    a.close(), b.close()
    r = merge(tmp_path / "m.zarr", [tmp_path / "a.zarr", tmp_path / "b.zarr"], fsync=False)
    assert r == {"added": 4, "skipped_duplicates": 0, "episodes": 4}
    m = TrajectoryStore.open(tmp_path / "m.zarr")
    assert [m.episode_meta(i).task for i in range(4)] == ["ep0", "ep1", "ep3", "ep4"]
    # Idempotent: the same merge again adds nothing (episode_id dedup); a store into itself is refused.
    again = merge(tmp_path / "m.zarr", [tmp_path / "a.zarr", tmp_path / "b.zarr"], fsync=False)
    assert again == {"added": 0, "skipped_duplicates": 4, "episodes": 4}
    with pytest.raises(StoreError, match="into itself"):
        merge(tmp_path / "a.zarr", [tmp_path / "b.zarr", tmp_path / "x" / ".." / "a.zarr"], fsync=False)
    other = make_schema()
    other = StoreSchema(robot=other.robot, control_hz=15.0, action_space=other.action_space,
                        features=other.features, cameras=other.cameras)
    TrajectoryStore.create(tmp_path / "c.zarr", other, fsync=False).close()
    with pytest.raises(StoreSchemaError, match="control_hz: store has 10.0, given 15.0"):
        merge(tmp_path / "m.zarr", [tmp_path / "c.zarr"], fsync=False)
    assert TrajectoryStore.open(tmp_path / "m.zarr").n_episodes == 4


def test_incremental_stats_match_numpy_and_skip_excluded(tmp_path):
    lengths = [300, 7, 1000, 64, 129]  # above and below the sketch size
    s = _fill(tmp_path / "s.zarr", 5, lengths)
    eps = [make_episode(i, lengths[i]) for i in range(5)]
    for key in (ACTION_KEY, STATE_KEY):
        x = np.concatenate([e[key] for e in eps]).astype(np.float64)
        st = s.stats(key)
        np.testing.assert_allclose(st["mean"], x.mean(0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(st["std"], x.std(0), rtol=1e-9)
        np.testing.assert_array_equal(st["min"], x.min(0))
        np.testing.assert_array_equal(st["max"], x.max(0))
        # quantiles from per-episode sketches: within a small fraction of the spread
        for q, name in ((0.01, "q01"), (0.99, "q99")):
            np.testing.assert_allclose(st[name], np.quantile(x, q, axis=0), atol=0.1 * x.std(0).max())  # ~one tail bin
        assert st["count"] == len(x)
    # the stored partials are what commit wrote (not recomputed)
    row = json.loads(str(zarr.open_group(str(s.path), mode="r")["meta/episode_stats"][1]))
    assert row[ACTION_KEY]["count"] == 7 and row[ACTION_KEY]["exact"] is True
    s.exclude([2])
    x = np.concatenate([eps[i][ACTION_KEY] for i in (0, 1, 3, 4)]).astype(np.float64)
    np.testing.assert_allclose(s.stats(ACTION_KEY)["mean"], x.mean(0), rtol=1e-9)
    np.testing.assert_allclose(s.stats(ACTION_KEY, exact=True)["q01"], np.quantile(x, 0.01, axis=0))
    # weighted sketch combination on its own, far from exact-size episodes
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((5000, 2)) * (1 + i) for i in range(4)]
    c = stats_mod.combine([stats_mod.partial_stats(p) for p in parts], (2,))
    allp = np.concatenate(parts)
    np.testing.assert_allclose(c["q99"], np.quantile(allp, 0.99, axis=0), rtol=0.03)
    s.close()


def test_disk_full_mid_episode_names_fix_and_keeps_committed(tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    from robot_stack.store import EpisodeWriter

    s = _fill(tmp_path / "s.zarr", 2)
    n_steps = s.n_steps
    real_set, calls = LocalStore.set, {"n": 0}

    async def full_set(self, key, value):
        calls["n"] += 1
        if calls["n"] > 3:  # a few chunk writes succeed, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_set)
    ep = make_episode(2, 40)
    w = EpisodeWriter(s, {"task": "ep2", "source": "sim"}, flush_every=4)
    with pytest.raises(StoreError, match=r"disk full.*free space"):
        for t in range(40):
            w.add_step({k: v[t] for k, v in ep.items()})
        w.commit()
    w.discard()  # what the recorder does on an error; may itself fail to truncate on a full disk: logged
    monkeypatch.setattr(LocalStore, "set", real_set)
    s.close()
    s2 = TrajectoryStore.open(tmp_path / "s.zarr", mode="a")
    assert s2.n_episodes == 2 and s2.n_steps == n_steps
    assert s2.get_episode(1)[ACTION_KEY].tobytes() == make_episode(1)[ACTION_KEY].tobytes()
    s2.append_episode(make_episode(2), {"task": "ep2", "source": "sim"})  # and recording goes on
    s2.close()


def test_read_only_media_clear_error(tmp_path, monkeypatch):
    import os as _os

    _fill(tmp_path / "s.zarr", 1).close()
    real_open = _os.open

    def ro_open(p, flags, *a, **k):  # we run as root in CI, so chmod cannot make a directory read-only
        if flags & (_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(p))
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr("robot_stack.store.trajectory.os.open", ro_open)
    with pytest.raises(StoreError, match=r"read-only media.*mode='r'"):
        TrajectoryStore.open(tmp_path / "s.zarr", mode="a")
    assert TrajectoryStore.open(tmp_path / "s.zarr", mode="r").n_episodes == 1


def test_root_metadata_has_the_contract(tmp_path):
    s = _fill(tmp_path / "s.zarr", 1)
    info = s.info()
    for key in ("schema_version", "robot", "control_hz", "action_space", "cameras", "features",
                "calibration_ids", "robot_stack_version", "image_codec", "created_time_iso"):
        assert key in info, key
    assert s.schema.camera_shapes == {"wrist": (12, 16, 3), "scene": (8, 10, 3)}
    bad = make_schema()
    bad.features[ACTION_KEY] = FeatureSpec("float32", (6,))
    s.close()
    with pytest.raises(StoreSchemaError, match=r"features\['action'\]"):
        TrajectoryStore.open_or_create(tmp_path / "s.zarr", bad)


def test_cli_commands(tmp_path, capsys):
    path = str(tmp_path / "s.zarr")
    _fill(path, 4).close()
    assert cli_main(["store", "info", path]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 4
    assert cli_main(["store", "exclude", path, "1"]) == 0
    assert cli_main(["store", "ls", path]) == 0
    out = capsys.readouterr().out
    assert "ep1" not in out and "ep2" in out and "1 excluded" in out
    assert cli_main(["store", "show", path, "2"]) == 0
    assert '"notes": "note 2"' in capsys.readouterr().out
    assert cli_main(["store", "stats", path, ACTION_KEY]) == 0
    assert "q99" in capsys.readouterr().out
    assert cli_main(["store", "split", path, "--val", "0.5", "--seed", "3"]) == 0
    capsys.readouterr()
    assert cli_main(["store", "label", path, "success", "0"]) == 0     # recorded: 0 % 3 != 0 is False
    assert "episode 0: success True (recorded False)" in capsys.readouterr().out
    assert cli_main(["store", "label", path, "recorded", "0"]) == 0
    assert "0 corrected label(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:          # argparse names the choices
        cli_main(["store", "label", path, "maybe", "0"])
    assert e.value.code == 2
    assert cli_main(["store", "validate", path]) == 0
    assert cli_main(["store", "include", path, "1"]) == 0
    assert cli_main(["store", "exclude", path, "3"]) == 0
    assert cli_main(["store", "compact", path]) == 0
    assert cli_main(["store", "merge", str(tmp_path / "m.zarr"), path]) == 0
    assert TrajectoryStore.open(tmp_path / "m.zarr").n_episodes == 3
    capsys.readouterr()
    assert cli_main(["store", "show", path, "9"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert cli_main(["store", "info", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # validate reports an uncommitted tail left by a crashed writer
    g = zarr.open_group(path, mode="r+")
    a = g[f"data/{ACTION_KEY}"]
    a.resize((a.shape[0] + 3, 7))
    assert cli_main(["store", "validate", path]) == 1
    assert "uncommitted steps" in capsys.readouterr().out


def test_cli_export_then_import_round_trips_through_a_lab_format(tmp_path, capsys):
    """`store export` / `store import` drive the formats with a progress bar; episodes come back intact."""
    src = tmp_path / "src.zarr"
    _fill(src, 3).close()
    out, back = tmp_path / "demo.hdf5", tmp_path / "back.zarr"
    assert cli_main(["store", "export", str(src), "robomimic_hdf5", str(out)]) == 0
    assert cli_main(["store", "import", str(back), "robomimic_hdf5", str(out)]) == 0
    a, b = TrajectoryStore.open(src), TrajectoryStore.open(back)
    assert b.n_episodes == 3
    for i in range(3):
        np.testing.assert_array_equal(a.get_episode(i)[ACTION_KEY], b.get_episode(i)[ACTION_KEY])
        assert b.episode_meta(i).task == a.episode_meta(i).task
    assert cli_main(["store", "export", str(src), "no_such_format", str(tmp_path / "x")]) == 2
    assert "robomimic_hdf5" in capsys.readouterr().err
