"""Tiny generated stores for the format round-trip tests: 3 episodes x 10 steps, two cameras, smooth images
(a moving gradient, so lossy video has something codec-friendly to encode) and realistic stamps
(10 Hz control, cameras 5 ms after the state, episodes 5 s apart)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_stack.store import StoreSchema, TrajectoryStore
from robot_stack.types import (
    ACTION_KEY,
    STATE_KEY,
    capture_ns_key,
    image_key,
    receive_ns_key,
    rig_features,
)

FMT_CAMERAS = {"front": (32, 32), "wrist": (16, 24)}
FMT_N_JOINTS = 6
CONTROL_HZ = 10.0
EPISODE_STEPS = (10, 8, 12)
T0_NS = 1_700_000_000_000_000_000
STEP_NS = int(1e9 / CONTROL_HZ)
META = [
    {"task": "put the cube in the bowl", "source": "policy", "policy_version": "bc_conv@v2", "success": True,
     "phase": "forward", "interventions": 1, "notes": "first"},
    {"task": "take the cube out of the bowl", "source": "teleop", "success": False, "phase": "backward"},
    {"task": "put the cube in the bowl", "source": "sim", "success": None},
]


def fmt_schema() -> StoreSchema:
    return StoreSchema(robot="wx250s", control_hz=CONTROL_HZ, action_space="ee_delta",
                       features=rig_features(FMT_CAMERAS, n_joints=FMT_N_JOINTS), cameras=tuple(FMT_CAMERAS))


def smooth_image(h: int, w: int, t: int, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin((xx + 2 * t + seed) / 6.0)
    g = 128 + 100 * np.cos((yy - t + 3 * seed) / 5.0)
    b = 64 + 60 * np.sin((xx + yy) / 8.0 + t / 3.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def make_fmt_episode(i: int, n: int, t_start_ns: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + i)
    state_ns = t_start_ns + STEP_NS * np.arange(n, dtype=np.int64)
    ep: dict[str, np.ndarray] = {}
    for k, (cam, (h, w)) in enumerate(FMT_CAMERAS.items()):
        cap = state_ns + 5_000_000 + k * 1_000_000  # the first frame after the state (assembler's pick)
        ep[image_key(cam)] = np.stack([smooth_image(h, w, t, 7 * i + k) for t in range(n)])
        ep[capture_ns_key(cam)] = cap
        ep[receive_ns_key(cam)] = cap + 2_000_000 + rng.integers(0, 1000, n)
    state = rng.standard_normal((n, FMT_N_JOINTS + 8)).astype(np.float32)
    state[:, -1] = rng.uniform(0, 1, n)  # gripper opening
    ep[STATE_KEY] = state
    ep[capture_ns_key("state")] = state_ns
    ep[receive_ns_key("state")] = state_ns + 1_000_000 + rng.integers(0, 1000, n)
    action = (0.01 * rng.standard_normal((n, 7))).astype(np.float32)
    action[:, 6] = rng.uniform(0, 1, n)
    ep[ACTION_KEY] = action
    # As the live recorder writes it: the stamp of the observation the action answers.
    ep[capture_ns_key("action")] = state_ns.copy()
    return ep


def fill_store(path) -> TrajectoryStore:
    store = TrajectoryStore.create(path, fmt_schema(), fsync=False)
    t = T0_NS
    for i, n in enumerate(EPISODE_STEPS):
        store.append_episode(make_fmt_episode(i, n, t), META[i])
        t += n * STEP_NS + 5_000_000_000  # 5 s between episodes: a gap the bag importer splits on
    return store


@pytest.fixture
def src_store(tmp_path):
    store = fill_store(tmp_path / "src")
    yield store
    store.close()


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def assert_same_episodes(src: TrajectoryStore, dst: TrajectoryStore, new: list[int], *, image_psnr_db=None,
                         meta_fields=("task", "source", "phase", "success", "policy_version", "interventions")):
    assert len(new) == src.n_episodes
    for i, j in zip(range(src.n_episodes), new, strict=True):
        a, b = src.get_episode(i), dst.get_episode(j)
        assert a.keys() == b.keys()
        for key in a:
            assert b[key].dtype == a[key].dtype, key
            assert b[key].shape == a[key].shape, key
            if image_psnr_db is not None and key.startswith("observation.images."):
                assert psnr_db(a[key], b[key]) >= image_psnr_db, (key, psnr_db(a[key], b[key]))
            else:
                np.testing.assert_array_equal(b[key], a[key], err_msg=key)
        ma, mb = src.episode_meta(i), dst.episode_meta(j)
        for f in meta_fields:
            assert getattr(mb, f) == getattr(ma, f), (i, f)
