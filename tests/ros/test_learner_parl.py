"""A learner that writes two checkpoint kinds (PA-RL: base-policy versions and critic versions) announces each on
its own topic over real rclpy topics: the policy on policy_update, the critic (config extra.kind "critic") on
critic_update, whatever the learner's configured topic."""

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
from robot_stack.learn.background import BackgroundService  # noqa: E402
from robot_stack.policies.base import make_policy  # noqa: E402
from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint  # noqa: E402
from robot_stack.policies.normalizer import Normalizer  # noqa: E402
from robot_stack.ros.learner_node import LearnerNode, announce_topic  # noqa: E402
from robot_stack.ros.qos import LATCHED  # noqa: E402
from robot_stack.types import STATE_KEY, rig_features  # noqa: E402

NS = "/learner_parl_test"
STATE_AC = {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 8, "actor_hidden_dims": [8],
            "critic_hidden_dims": [8]}


def test_policy_and_critic_checkpoints_go_to_their_own_topics(tmp_path):
    torch.set_num_threads(1)
    schema = PolicySchema.from_features(rig_features({}, 6))
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(50, 7))
    actions[:, 6] = rng.integers(0, 2, 50)
    normalizer = Normalizer.fit(actions, rng.normal(size=(50, schema.observation[STATE_KEY].shape[0])))
    policy = save_checkpoint(make_policy("actor_critic", STATE_AC, normalizer), normalizer, schema,
                             tmp_path / "ckpt", 1, step=1)
    critic = save_checkpoint(make_policy("actor_critic", {**STATE_AC, "extra": {"kind": "critic"}}, normalizer),
                             normalizer, schema, tmp_path / "ckpt" / "critic", 1, step=1)
    assert announce_topic(make_update(policy), "critic_update") == "policy_update"
    assert announce_topic(make_update(critic), "policy_update") == "critic_update"

    class TwoKinds(BackgroundService):
        """A learner service that announces a policy then a critic version, as PARLLearnerService does."""

        def __init__(self, announce, progress):
            super().__init__()
            self.announce, self.updates = announce, []

        def run(self):
            self._announce(make_update(policy))
            self._announce(make_update(critic))
            self._stop.wait()

    rclpy.init()
    peer = rclpy.create_node("learner_parl_peer", namespace=NS)
    got: dict[str, list] = {"policy_update": [], "critic_update": []}
    for topic in got:
        peer.create_subscription(String, topic, lambda m, t=topic: got[t].append(json.loads(m.data)), LATCHED)
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    learner = LearnerNode(TwoKinds, NS)          # configured topic: policy_update (the PA-RL recipes' default)
    executor.add_node(learner)
    thread = threading.Thread(target=lambda: executor.spin(), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (got["policy_update"] and got["critic_update"]):
            time.sleep(0.05)
        assert [u["path"] for u in got["policy_update"]] == [str(policy)]
        assert [u["path"] for u in got["critic_update"]] == [str(critic)]
    finally:
        learner.close()
        executor.shutdown(timeout_sec=2)
        rclpy.shutdown()
        thread.join(5)
        for n in (learner, peer):
            n.destroy_node()
