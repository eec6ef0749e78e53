"""A learner on another machine, over real rclpy topics: the learner node serves its checkpoint root and
announces a URL on policy_update; the inference node (no shared filesystem: its checkpoint root is elsewhere)
downloads it into its cache, verifies it and reports it active on policy_active.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from robot_stack.inference.manifest import make_update  # noqa: E402
from robot_stack.inference.runner import PolicyRunner  # noqa: E402
from robot_stack.learn.background import BackgroundService  # noqa: E402
from robot_stack.policies.base import make_policy  # noqa: E402
from robot_stack.policies.bc_conv import BCConvConfig  # noqa: E402
from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint  # noqa: E402
from robot_stack.policies.normalizer import Normalizer  # noqa: E402
from robot_stack.policies.remote import server_from_config  # noqa: E402
from robot_stack.ros.inference_node import InferenceNode  # noqa: E402
from robot_stack.ros.learner_node import LearnerNode  # noqa: E402
from robot_stack.ros.qos import LATCHED  # noqa: E402
from robot_stack.store.align import ObservationAssembler  # noqa: E402
from robot_stack.types import ACTION_SPACES, rig_features  # noqa: E402

NS = "/learner_remote_test"
TINY = BCConvConfig(cameras=("front",), image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,),
                    group_norm_groups=4)


def test_learner_node_announces_urls_the_inference_node_downloads(tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "learner_machine" / "ckpt"
    schema = PolicySchema.from_features(rig_features({"front": (24, 32)}, 6))
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    normalizer = Normalizer.fit(actions, rng.normal(size=(100, 14)))
    v1 = save_checkpoint(make_policy("bc_conv", TINY, normalizer), normalizer, schema, root, 1, step=1)

    class OneCheckpoint(BackgroundService):
        """A learner service that announces v1, as LearnerService does after its first save."""

        def __init__(self, announce, progress):
            super().__init__()
            self.announce, self.updates = announce, []

        def run(self):
            self._announce(make_update(v1))
            self._stop.wait()

    rclpy.init()
    server = server_from_config({"listen": "127.0.0.1:0"}, root)
    node_ref = []
    runner = PolicyRunner(schema, on_event=lambda k, p: node_ref[0].on_runner_event(k, p),
                          checkpoint_roots=[tmp_path / "robot" / "ckpt"], checkpoint_cache_dir=tmp_path / "robot" / "cache",
                          checkpoint_urls=[server.url])
    inference = InferenceNode(runner, ObservationAssembler(("front",), max_skew_ms=400), ("front",),
                              ACTION_SPACES["ee_delta"], NS, enabled=False)
    node_ref.append(inference)
    peer = rclpy.create_node("learner_remote_peer", namespace=NS)
    updates, actives = [], []
    peer.create_subscription(String, "policy_update", lambda m: updates.append(json.loads(m.data)), LATCHED)
    peer.create_subscription(String, "policy_active", lambda m: actives.append(json.loads(m.data)), LATCHED)
    executor = SingleThreadedExecutor()
    for n in (inference, peer):
        executor.add_node(n)
    learner = LearnerNode(OneCheckpoint, NS, checkpoint_server=server)
    executor.add_node(learner)
    thread = threading.Thread(target=lambda: executor.spin(), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not actives:
            time.sleep(0.05)
        assert updates and updates[-1]["path"] == f"{server.url}/v0001"
        assert actives, "no policy_active within 20 s"
        assert (actives[-1]["status"], actives[-1]["version"], actives[-1]["path"]) == ("ok", 1, f"{server.url}/v0001")
        assert runner.active_version == 1 and (tmp_path / "robot" / "cache" / "v0001" / "manifest.json").is_file()
    finally:
        learner.close()  # stops the service and the checkpoint server
        executor.shutdown(timeout_sec=2)
        rclpy.shutdown()
        thread.join(5)
        runner.close()
        for n in (learner, inference, peer):
            n.destroy_node()
