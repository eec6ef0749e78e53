"""Hardware-in-the-loop on the simulated Franka Panda: the sim_collect profile with rig=sim_franka (real rclpy
processes: sim rig + recorder), two scripted episodes through the recorder, committed with 15-d state.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_stack.cli.episodes import run_episode
from robot_stack.cli.supervisor import Supervisor
from robot_stack.conf.profiles import load_profile

pytestmark = pytest.mark.hil


def _wait_for_camera_frames(client, cameras, check, timeout_s=60.0):
    """Services answer before the first rendered frames arrive; an episode started then misses its first step."""
    from sensor_msgs.msg import Image

    from robot_stack.ros.qos import SENSOR

    seen: set[str] = set()
    subs = [client.node.create_subscription(Image, f"camera/{c}/image_raw", lambda m, c=c: seen.add(c), SENSOR)
            for c in cameras]
    deadline = time.monotonic() + timeout_s
    while seen != set(cameras):
        check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for frames from {sorted(set(cameras) - seen)}")
        time.sleep(0.05)
    for sub in subs:
        client.node.destroy_subscription(sub)


def test_panda_collects_scripted_episodes(tmp_path, rig_client):
    from robot_stack.conf import load_config
    from robot_stack.store import TrajectoryStore

    store_path = tmp_path / "store.zarr"
    overrides = ["rig=sim_franka", f"store={store_path}", "task=put_cube_in_bowl"]
    namespace = str(load_config(overrides).rig.namespace)
    profile = load_profile("sim_collect", overrides)
    assert profile.namespace == namespace == "/panda"  # the profile takes the rig's namespace
    with Supervisor(profile, log_dir=tmp_path / "logs") as sup:
        client = rig_client(namespace)
        client.wait_ready(["sim/reset", "sim/evaluate", "teleop/enable", "recorder/start", "recorder/stop"],
                          timeout_s=90, check=sup.check)
        _wait_for_camera_frames(client, ("front", "wrist"), sup.check)
        results = [run_episode(client, "expert", 60, check=sup.check) for _ in range(2)]
        sup.check()
    # The Panda's mesh renders are slower on a shared CPU: the step answering the reset observation can miss
    # its frame (the recorder drops it rather than pair it with a stale image). Never more than that.
    assert all(r.episode is not None and r.steps > 10 and r.dropped <= 1 for r in results), results
    assert sum(r.success for r in results) >= 1, results
    store = TrajectoryStore.open(str(store_path), mode="r")
    assert store.schema.robot == "panda" and store.n_episodes == 2
    for i, r in enumerate(results):
        ep = store.get_episode(i)
        n = r.steps - r.dropped
        assert ep["observation.state"].shape == (n, 15)
        assert ep["action"].shape == (n, 7) and np.isfinite(ep["action"]).all()
        assert ep["observation.images.wrist"].shape == (n, 128, 128, 3)
        meta = store.episode_meta(i)
        assert meta.task == "put the cube in the bowl" and meta.source == "sim" and meta.success is r.success
