"""Hardware-in-the-loop: the real rclpy processes (sim rig, recorder, learner, inference) end to end.

Small numbers: 2 scripted demonstrations, a 40-step BC checkpoint, 1 policy episode, plus the safety
paths (malformed and stale commands, e-stop) exercised over real topics and services.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from robot_stack.cli.episodes import run_episode
from robot_stack.cli.supervisor import Supervisor
from robot_stack.conf.profiles import load_profile
from robot_stack_testing.waiting import wait_until as _wait

pytestmark = pytest.mark.hil


def test_collect_train_deploy_with_safety(tmp_path, rig_client):
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import JointState

    from robot_stack.ros import conversions as conv
    from robot_stack.store import TrajectoryStore

    store_path, ckpt = tmp_path / "store.zarr", tmp_path / "ckpt"
    overrides = [f"store={store_path}", f"checkpoints={ckpt}", "learner.min_episodes=2",
                 "learner.steps_per_version=40", "learner.max_versions=1", "learner.batch_size=16",
                 "learner.poll_interval_s=0.5", "task.max_steps=45"]
    with Supervisor(load_profile("sim_demo", overrides), log_dir=tmp_path / "logs") as sup:
        client = rig_client()
        client.wait_ready(["sim/reset", "sim/evaluate", "teleop/enable", "recorder/start", "recorder/stop",
                           "inference/enable", "estop"], timeout_s=90, check=sup.check)

        demos = [run_episode(client, "expert", 45, check=sup.check) for _ in range(2)]
        assert all(r.episode is not None and r.steps > 10 for r in demos), demos
        assert all(r.dropped == 0 for r in demos)

        active = client.wait_policy_version(1, timeout_s=120, check=sup.check)
        assert active["status"] == "ok" and active["version"] == 1

        rollout = run_episode(client, "policy", 15, check=sup.check)
        assert rollout.episode is not None and rollout.steps >= 10, rollout

        # -- safety over the real topics -----------------------------------------------------------
        pub = client.node.create_publisher(JointState, "action", QoSProfile(depth=5))
        _wait(lambda: pub.get_subscription_count() > 0, 10, "the arm node's action subscription")
        executed_before = int(client.arm_status.get("executed", 0))
        pub.publish(conv.action_to_msg(["dx", "dy"], [0.01, 0.0], time.time_ns(), "teleop:hil"))  # malformed
        _wait(lambda: "do not match" in client.arm_status.get("last_rejection", ""), 5,
              "malformed command rejection", sup.check)
        names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
        pub.publish(conv.action_to_msg(names, [0.01, 0, 0, 0, 0, 0, 1], time.time_ns() - 5_000_000_000, "teleop:hil"))
        _wait(lambda: "stale" in client.arm_status.get("last_rejection", ""), 5, "stale command rejection", sup.check)
        _wait(lambda: client.arm_status.get("status") == "holding", 5, "watchdog hold", sup.check)
        assert int(client.arm_status["executed"]) == executed_before  # nothing bad was executed

        assert client.call("estop", True).success
        _wait(lambda: client.arm_status.get("status") == "estopped", 5, "e-stop status", sup.check)
        client.call("inference/enable", True)
        time.sleep(1.0)  # 5 control ticks with the policy sending
        assert client.arm_status.get("status") == "estopped"
        assert int(client.arm_status["executed"]) == executed_before
        client.call("inference/enable", False)
        assert client.call("estop", False).success
        _wait(lambda: client.arm_status.get("status") == "holding", 5, "e-stop release", sup.check)
        sup.check()

    store = TrajectoryStore.open(str(store_path), mode="r")
    assert store.n_episodes == 3
    metas = [store.episode_meta(i) for i in range(3)]
    assert [m.source for m in metas] == ["sim", "sim", "policy"]
    assert metas[2].policy_version and metas[2].policy_version.endswith("v1")
    ep = store.get_episode(2)
    assert ep["action"].shape == (rollout.steps, 7) and np.isfinite(ep["action"]).all()
    assert ep["observation.images.front"].shape == (rollout.steps, 128, 128, 3)
    # every recorded action answers an observation no older than the recorder allows
    assert (ep["timestamps.action.capture_ns"] == ep["timestamps.state.capture_ns"]).all()
    assert json.loads((ckpt / "v0001" / "manifest.json").read_text())["version"] == 1


def test_camera_topics_do_not_drop_frames_at_256px(tmp_path, rig_client):
    """2 x 256x256 RGB at 10 Hz over Fast DDS (large-data mode set by the project) arrive complete."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from robot_stack.ros import conversions as conv
    from robot_stack.ros.qos import SENSOR, STATUS

    overrides = ["rig.cameras.front.height=256", "rig.cameras.front.width=256",
                 "rig.cameras.wrist.height=256", "rig.cameras.wrist.width=256", f"store={tmp_path / 's.zarr'}"]
    with Supervisor(load_profile("sim_collect", overrides), log_dir=tmp_path / "logs") as sup:
        client = rig_client()
        received = {"front": 0, "wrist": 0}
        published: list[dict] = []
        for cam in received:
            client.node.create_subscription(Image, f"camera/{cam}/image_raw",
                                            lambda m, c=cam: received.__setitem__(c, received[c] + 1), SENSOR)
        client.node.create_subscription(String, "camera/status", lambda m: published.append(conv.msg_json(m)), STATUS)
        _wait(lambda: len(published) >= 2 and all(received.values()), 60, "camera frames", sup.check)
        start_pub, start_rx = dict(published[-1]["published"]), dict(received)
        n_status = len(published)
        _wait(lambda: len(published) >= n_status + 5, 15, "5 s of camera status", sup.check)
        end_pub, end_rx = dict(published[-1]["published"]), dict(received)
    assert os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA") == "LARGE_DATA"
    for cam in received:
        sent = end_pub[cam] - start_pub[cam]
        got = end_rx[cam] - start_rx[cam]
        assert sent >= 30, f"{cam}: the sim published only {sent} frames in ~5 s"
        # the two counters are sampled at slightly different instants: allow one frame in flight
        assert got >= sent - 1, f"{cam}: received {got} of {sent} frames"
