"""TrajectoryStore + EpisodeWriter on a real zarr store in tmp_path: round trip, validation, writer, stats, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import zarr
from store_data import make_episode, make_schema

import robot_stack
from robot_stack.store import (
    EpisodeMeta,
    EpisodeWriter,
    StoreError,
    StoreLockedError,
    StoreSchema,
    StoreSchemaError,
    TrajectoryStore,
)
from robot_stack.types import ACTION_KEY, STATE_KEY, FeatureSpec, capture_ns_key, image_key

META = {"task": "put the cup in the sink", "source": "teleop"}


def _assert_episode_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].tobytes() == want[k].tobytes(), k  # byte-identical, not just allclose


def test_round_trip_byte_identical_and_layout(tmp_path, schema):
    path = tmp_path / "s.zarr"
    eps = [make_episode(i) for i in range(3)]
    with TrajectoryStore.create(path, schema, fsync=True) as store:
        for i, ep in enumerate(eps):
            assert store.append_episode(ep, {**META, "success": i % 2 == 0, "phase": "forward"}) == i
        lengths = [len(e[ACTION_KEY]) for e in eps]
        assert store.n_episodes == 3 and store.n_steps == sum(lengths)
        np.testing.assert_array_equal(store.episode_ends, np.cumsum(lengths))

    r = TrajectoryStore.open(path)  # read-only
    assert r.recovery is None
    assert r.schema == schema
    for i, ep in enumerate(eps):
        _assert_episode_equal(r.get_episode(i), ep)
        assert r.episode_slice(i) == slice(int(sum(lengths[:i])), int(sum(lengths[: i + 1])))
    assert r.get_episode(-1, keys=[ACTION_KEY]).keys() == {ACTION_KEY}
    np.testing.assert_array_equal(r.read(STATE_KEY, 2, 7), eps[0][STATE_KEY][2:7])
    m = r.episode_meta(1)
    assert (m.task, m.source, m.success, m.phase, m.interventions) == (META["task"], "teleop", False, "forward", 0)
    assert m.end_time_ns is not None

    # Layout contract (DESIGN.md): root attrs, commit marker, time-only chunking, image shards.
    g = zarr.open_group(str(path), mode="r")
    attrs = g.attrs.asdict()
    assert attrs["schema_version"] == 1 and attrs["robot"] == "wx250s" and attrs["control_hz"] == 10.0
    assert attrs["features"][ACTION_KEY] == {"dtype": "float32", "shape": [7]}
    assert attrs["cameras"] == ["wrist", "scene"] and attrs["robot_stack_version"] == robot_stack.__version__
    assert "created_time_ns" in attrs
    ends = g["meta/episode_ends"]
    assert ends.dtype == np.int64 and ends.shape == (3,)
    img = g[f"data/{image_key('wrist')}"]
    assert img.chunks == (1, 12, 16, 3) and img.shards[0] > 1 and img.shards[1:] == (12, 16, 3)
    act = g[f"data/{ACTION_KEY}"]
    assert act.chunks[1:] == (7,) and act.chunks[0] >= 256
    assert json.loads(str(g["meta/episode_info"][2]))["success"] is True


def test_filters_and_stats_match_numpy(tmp_path, schema):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    eps = [make_episode(10 + i) for i in range(4)]
    sources = ["teleop", "policy", "policy", "sim"]
    for i, (ep, src) in enumerate(zip(eps, sources, strict=True)):
        store.append_episode(ep, EpisodeMeta(task="a" if i < 2 else "b", source=src, success=i != 1,
                                             policy_version="v3" if src == "policy" else None))
    assert store.episodes(source="policy") == [1, 2]
    assert store.episodes(success=True) == [0, 2, 3]
    assert store.episodes(task="b", source="policy") == [2]
    assert store.episode_meta(1).policy_version == "v3"

    allx = np.concatenate([e[ACTION_KEY] for e in eps]).astype(np.float64)
    st = store.stats(ACTION_KEY)
    np.testing.assert_allclose(st["mean"], allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st["std"], allx.std(0), rtol=1e-12)
    np.testing.assert_array_equal(st["min"], allx.min(0))
    np.testing.assert_array_equal(st["max"], allx.max(0))
    np.testing.assert_allclose(st["q01"], np.quantile(allx, 0.01, axis=0))
    np.testing.assert_allclose(st["q99"], np.quantile(allx, 0.99, axis=0))
    assert st["count"] == len(allx)
    sub = np.concatenate([eps[1][STATE_KEY], eps[3][STATE_KEY]]).astype(np.float64)
    np.testing.assert_allclose(store.stats(STATE_KEY, episodes=[1, 3])["mean"], sub.mean(0), rtol=1e-12)
    store.close()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop(STATE_KEY), r"missing key.*observation\.state"),
        (lambda d: d.__setitem__("observation.extra", d[ACTION_KEY]), r"observation\.extra.*not in the store schema"),
        (lambda d: d.__setitem__(ACTION_KEY, d[ACTION_KEY][:, :6]), r"'action' has shape \(\d+, 6\)"),
        (lambda d: d.__setitem__(image_key("wrist"), d[image_key("wrist")].astype(np.int64)),
         r"observation\.images\.wrist' has dtype int64; expected uint8"),
        (lambda d: d.__setitem__(capture_ns_key("state"), d[capture_ns_key("state")][:-1]),
         r"unequal lengths.*timestamps\.state\.capture_ns"),
        (lambda d: d[ACTION_KEY].__setitem__((3, 2), np.nan), r"'action' has NaN/inf at step\(s\) \[3\]"),
        (lambda d: d[STATE_KEY].__setitem__((0, 0), np.inf), r"'observation\.state' has NaN/inf"),
    ],
    ids=["missing", "unknown", "shape", "dtype", "unequal", "nan_action", "inf_state"],
)
def test_append_validation_errors_name_the_key(tmp_path, schema, mutate, match):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    store.append_episode(make_episode(0), META)
    bad = make_episode(1)
    mutate(bad)
    with pytest.raises(StoreSchemaError, match=match):
        store.append_episode(bad, META)
    # A refused episode leaves nothing behind: the next one lands right after episode 0.
    ok = make_episode(2)
    assert store.append_episode(ok, META) == 1
    _assert_episode_equal(store.get_episode(1), ok)
    store.close()


def test_meta_validation_and_float64_cast(tmp_path, schema):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    with pytest.raises(StoreSchemaError, match="source"):
        store.append_episode(make_episode(0), {"task": "x", "source": "youtube"})
    with pytest.raises(StoreSchemaError, match="phase"):
        store.append_episode(make_episode(0), {**META, "phase": "sideways"})
    with pytest.raises(StoreSchemaError, match="unknown episode meta field"):
        store.append_episode(make_episode(0), {**META, "sucess": True})
    with pytest.raises(StoreSchemaError, match="true_success"):
        store.append_episode(make_episode(0), {**META, "true_success": "yes"})
    with pytest.raises(StoreSchemaError, match="attempt"):
        store.append_episode(make_episode(0), {**META, "attempt": -1})
    ep = make_episode(0)
    ep[ACTION_KEY] = ep[ACTION_KEY].astype(np.float64)  # numpy maths gives float64; stored as float32
    store.append_episode(ep, {**META, "source": "practice", "phase": "backward", "attempt": 7, "success": True,
                              "true_success": False})
    assert store.read(ACTION_KEY, 0, 3).dtype == np.float32
    store.close()
    m = TrajectoryStore.open(tmp_path / "s.zarr", mode="r").episode_meta(0)  # practice fields survive a reopen
    assert (m.phase, m.attempt, m.success, m.true_success) == ("backward", 7, True, False)


def test_episode_writer_incremental_commit_and_discard(tmp_path, schema):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema, fsync=False)
    ep = make_episode(5, n_steps=23)
    w = EpisodeWriter(store, {**META, "source": "policy", "policy_version": "bc@v1"}, flush_every=4)
    for t in range(23):
        # timestamps arrive as scalars (np.int64 or int), exactly as the recorder produces them
        w.add_step({k: (int(v[t]) if v.ndim == 1 else v[t]) for k, v in ep.items()})
        assert w.n_steps == t + 1
    w.wait_flushed()  # the background flusher wrote every full batch of 4 (steps 0..19); 3 stay in RAM
    # Flushed steps sit past the committed end but are not part of the store yet.
    assert store.n_episodes == 0
    assert zarr.open_group(str(path), mode="r")[f"data/{ACTION_KEY}"].shape[0] == 20
    with pytest.raises(StoreError, match="EpisodeWriter"):
        store.append_episode(make_episode(0), META)
    assert w.commit(success=True, interventions=2) == 0
    _assert_episode_equal(store.get_episode(0), ep)
    assert store.episode_meta(0).success is True and store.episode_meta(0).interventions == 2
    assert store.episode_meta(0).start_time_ns <= store.episode_meta(0).end_time_ns
    with pytest.raises(StoreError, match="already committed"):
        w.add_step({k: v[0] for k, v in ep.items()})

    # discard: flushed steps are truncated back, buffered ones forgotten.
    w2 = EpisodeWriter(store, META, flush_every=4)
    for t in range(10):
        w2.add_step({k: v[t] for k, v in make_episode(6, n_steps=10).items()})
    w2.wait_flushed()
    assert zarr.open_group(str(path), mode="r")[f"data/{ACTION_KEY}"].shape[0] == 23 + 9  # aligned: 24, 28, 32
    w2.discard()
    assert zarr.open_group(str(path), mode="r")[f"data/{ACTION_KEY}"].shape[0] == 23

    # a context-managed writer that raises discards too; the next episode follows episode 0 directly
    with pytest.raises(RuntimeError), EpisodeWriter(store, META, flush_every=2) as w3:
        for t in range(5):
            w3.add_step({k: v[t] for k, v in ep.items()})
        raise RuntimeError("teleop disconnected")
    ep2 = make_episode(7, n_steps=9)
    w4 = EpisodeWriter(store, META, flush_every=4)
    for t in range(9):
        w4.add_step({k: v[t] for k, v in ep2.items()})
    assert w4.commit() == 1
    _assert_episode_equal(store.get_episode(1), ep2)
    store.close()

    r = TrajectoryStore.open(path)
    _assert_episode_equal(r.get_episode(0), ep)
    _assert_episode_equal(r.get_episode(1), ep2)


def test_writer_step_validation(tmp_path, schema):
    store = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    ep = make_episode(0, n_steps=3)
    frame = {k: v[0] for k, v in ep.items()}
    w = EpisodeWriter(store, META)
    with pytest.raises(StoreSchemaError, match=r"'action' has NaN"):
        w.add_step({**frame, ACTION_KEY: np.full(7, np.nan, np.float32)})
    with pytest.raises(StoreSchemaError, match=r"missing \['observation\.state'\]"):
        w.add_step({k: v for k, v in frame.items() if k != STATE_KEY})
    with pytest.raises(StoreSchemaError, match=r"'observation\.images\.scene' has shape \(8, 10\)"):
        w.add_step({**frame, image_key("scene"): frame[image_key("scene")][..., 0]})
    with pytest.raises(StoreError, match="no steps"):
        w.commit()
    with pytest.raises(StoreError, match="already has an open EpisodeWriter"):
        EpisodeWriter(store, META)
    w.discard()
    store.close()


def test_not_a_store_missing_and_read_only_errors(tmp_path, schema):
    (tmp_path / "foo").mkdir()
    (tmp_path / "foo" / "x.txt").write_text("hi")
    with pytest.raises(StoreError, match=r"foo is not a robot_stack store .*meta/episode_ends.*create one with"):
        TrajectoryStore.open(tmp_path / "foo")
    with pytest.raises(StoreError, match="does not exist"):
        TrajectoryStore.open(tmp_path / "nope", mode="a")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")  # a zarr group, but not ours
    with pytest.raises(StoreError, match="not a robot_stack store"):
        TrajectoryStore.open(tmp_path / "plain.zarr")
    with pytest.raises(StoreError, match="not an empty directory"):
        TrajectoryStore.create(tmp_path / "foo", schema)

    path = tmp_path / "s.zarr"
    TrajectoryStore.create(path, schema, fsync=False).close()
    with pytest.raises(StoreError, match="already is a robot_stack store"):
        TrajectoryStore.create(path, schema)
    r = TrajectoryStore.open(path, mode="r")
    with pytest.raises(StoreError, match="read-only.*mode='a'"):
        r.append_episode(make_episode(0), META)
    with pytest.raises(StoreError, match="read-only"):
        EpisodeWriter(r, META)
    with pytest.raises(IndexError, match="committed"):
        r.read(ACTION_KEY, 0, 1)
    with pytest.raises(ValueError, match="mode"):
        TrajectoryStore.open(path, mode="w")


def test_open_or_create_schema_check_and_writer_lock(tmp_path, schema):
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.open_or_create(path, schema, fsync=False)
    store.append_episode(make_episode(0), META)
    # Only one writer: the flock is per open file, so even this process cannot open a second writer.
    with pytest.raises(StoreLockedError, match=r"already open for writing .*pid \d+.*mode='r'"):
        TrajectoryStore.open(path, mode="a")
    assert TrajectoryStore.open(path, mode="r").n_episodes == 1  # readers are never blocked
    store.close()

    other = dataclasses.replace(make_schema(), control_hz=5.0,
                                features={**schema.features, ACTION_KEY: FeatureSpec("float32", (8,))})
    with pytest.raises(StoreSchemaError, match=r"control_hz(.|\n)*features\['action'\]"):
        TrajectoryStore.open_or_create(path, other)
    with pytest.raises(StoreSchemaError, match="robot"):
        make_schema().check_compatible(dataclasses.replace(make_schema(), robot="fr3"))
    # the refused open released its lock: a compatible writer can open now
    again = TrajectoryStore.open_or_create(path, StoreSchema.from_json(schema.to_json()))
    assert again.n_episodes == 1 and again.recovery is None
    again.close()
