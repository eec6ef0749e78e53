"""StoreSchema.image_codec="jpeg...": the zarr v3 JPEG codec round-trips camera-like frames within a PSNR
bound, is recorded in the root metadata and the array metadata, is needed to reopen the store (clear error
without it), and the sampler's direct shard reader decodes it like zarr does."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import zarr
from store_data import make_schema

from robot_stack.store import EpisodeWriter, StoreError, StoreSchemaError, TrajectoryStore
from robot_stack.store import codecs as store_codecs
from robot_stack.store.fastread import ArrayReader
from robot_stack.store.sampler import SamplerConfig, TrajectorySampler
from robot_stack.types import ACTION_KEY, STATE_KEY, image_key, rig_features

CAMS = {"front": (48, 64), "wrist": (32, 32)}
META = {"task": "pick", "source": "sim"}


def _schema(codec: str):
    return dataclasses.replace(make_schema(), features=rig_features(CAMS, n_joints=6), cameras=tuple(CAMS),
                               image_codec=codec)


def camera_like(seed: int, n: int, h: int, w: int) -> np.ndarray:
    """(n, h, w, 3) uint8: smooth moving scene + sensor noise (what JPEG is for; pure noise would not be)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = 100 + 60 * np.sin(xx / (w / 3) + 0.2 * i)[..., None] + 40 * np.cos(yy / (h / 2))[..., None]
        out[i] = np.clip(base * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 2, (h, w, 3)), 0, 255)
    return out


def episode(seed: int, T: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, spec in _schema("jpeg").features.items():
        if k.startswith("observation.images."):
            out[k] = camera_like(seed, T, *spec.shape[:2])
        elif spec.dtype == "int64":
            out[k] = np.arange(T, dtype=np.int64) + 1000 * seed
        else:
            out[k] = rng.standard_normal((T, *spec.shape)).astype(spec.dtype)
    return out


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture
def jpeg_store(tmp_path):
    s = TrajectoryStore.create(tmp_path / "j.zarr", _schema("jpeg-q90"), fsync=False)
    eps = [episode(i, T) for i, T in enumerate([70, 9, 30])]
    for i, ep in enumerate(eps):
        if i == 1:  # one episode through the incremental writer (background flusher)
            w = EpisodeWriter(s, META, flush_every=4)
            for t in range(len(ep[ACTION_KEY])):
                w.add_step({k: v[t] for k, v in ep.items()})
            w.commit(success=True)
        else:
            s.append_episode(ep, {**META, "success": True})
    yield s, eps
    s.close()


def test_round_trip_within_psnr_and_smaller_than_lossless(tmp_path, jpeg_store):
    s, eps = jpeg_store
    for i, ep in enumerate(eps):
        got = s.get_episode(i)
        for k, v in ep.items():
            if k.startswith("observation.images."):
                assert got[k].shape == v.shape and got[k].dtype == np.uint8
                assert psnr(got[k], v) > 35.0, (i, k, psnr(got[k], v))
                assert not np.array_equal(got[k], v)  # really lossy: it is JPEG, not a silent fallback
            else:
                np.testing.assert_array_equal(got[k], v, err_msg=f"{i} {k}: non-image keys stay lossless")
    lossless = TrajectoryStore.create(tmp_path / "l.zarr", _schema("blosc-lz4"), fsync=False)
    for ep in eps:
        lossless.append_episode(ep, META)
    lossless.close()

    def nbytes(p, key):
        return sum(f.stat().st_size for f in (p / "data" / key).joinpath("c").rglob("*") if f.is_file())

    key = image_key("front")
    assert nbytes(s.path, key) * 4 < nbytes(tmp_path / "l.zarr", key)


def test_codec_recorded_in_metadata_and_depth_stays_lossless(jpeg_store):
    s, _ = jpeg_store
    root = json.loads((s.path / "zarr.json").read_text())
    assert root["attributes"]["image_codec"] == "jpeg-q90"
    assert TrajectoryStore.open(s.path).schema.image_codec == "jpeg-q90"
    meta = json.loads((s.path / "data" / image_key("front") / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    assert inner == [{"name": store_codecs.CODEC_NAME, "configuration": {"quality": 90}}]
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [1, 48, 64, 3]  # one frame per inner chunk
    state = json.loads((s.path / "data" / STATE_KEY / "zarr.json").read_text())
    assert store_codecs.CODEC_NAME not in json.dumps(state)


def test_unknown_codec_name_is_refused():
    with pytest.raises(StoreSchemaError, match="unknown image_codec 'jpg'.*'jpeg-q<1..100>'"):
        _schema("jpg")
    with pytest.raises(StoreSchemaError, match="unknown image_codec"):
        _schema("jpeg-q0")


def test_reopen_without_the_codec_registered_names_the_fix(jpeg_store, monkeypatch):
    s, _ = jpeg_store
    registries = getattr(zarr.registry, "__codec_registries")
    monkeypatch.delitem(registries, store_codecs.CODEC_NAME)
    assert not store_codecs.is_registered()
    with pytest.raises(StoreError, match=r"robot_stack\.jpeg.*not registered.*import robot_stack\.store\.codecs"):
        TrajectoryStore.open(s.path, mode="r")
    with pytest.raises(Exception):  # noqa: B017 - bare zarr refuses too (rather than returning garbage)
        zarr.open_array(str(s.path / "data" / image_key("front")), mode="r")[0]
    monkeypatch.undo()
    assert TrajectoryStore.open(s.path, mode="r").n_episodes == 3


def test_fastread_and_sampler_on_a_jpeg_store(jpeg_store):
    s, eps = jpeg_store
    for key in (image_key("front"), image_key("wrist")):
        r = ArrayReader(s.path / "data" / key)
        assert r.ok, "the direct reader must handle JPEG chunks (else the sampler falls back to slow zarr reads)"
        for a, b in [(0, s.n_steps), (3, 66), (63, 65), (64, 109)]:
            np.testing.assert_array_equal(r.read(a, b), s.read(key, a, b), err_msg=f"{key}[{a}:{b}]")
    smp = TrajectorySampler(s, SamplerConfig(n_obs_steps=2, action_horizon=3))
    b = smp.sample(64)
    assert b["obs"][image_key("front")].shape == (64, 2, 48, 64, 3)
    for j in range(64):
        e, t = int(b["episode"][j]), int(b["t"][j])
        want = eps[e][image_key("front")][t]
        assert psnr(b["obs"][image_key("front")][j, 1], want) > 35.0
        np.testing.assert_array_equal(b["action"][j, 0], eps[e][ACTION_KEY][t])
