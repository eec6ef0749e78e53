"""The inference node over real rclpy topics and services (review B4/B5, test T20): a policy that raises in
select_action does not kill the node; it publishes no action that tick, falls back to the version that ran
before, and says so on inference/status; inference/rollback goes back on request; a policy_update from
outside the checkpoint root is refused with the reason on policy_active.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from types import SimpleNamespace  # noqa: E402

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from robot_stack.inference.manifest import make_update  # noqa: E402
from robot_stack.inference.runner import PolicyRunner  # noqa: E402
from robot_stack.policies.base import make_policy  # noqa: E402
from robot_stack.policies.bc_conv import BCConvConfig  # noqa: E402
from robot_stack.policies.checkpoint import PolicySchema, load_policy, save_checkpoint  # noqa: E402
from robot_stack.policies.normalizer import Normalizer  # noqa: E402
from robot_stack.ros import conversions as conv  # noqa: E402
from robot_stack.ros.inference_node import InferenceNode  # noqa: E402
from robot_stack.ros.qos import COMMAND, LATCHED, SENSOR, STATUS  # noqa: E402
from robot_stack.store.align import ObservationAssembler  # noqa: E402
from robot_stack.types import ACTION_SPACES, rig_features  # noqa: E402
from robot_stack_testing.waiting import wait_until as _wait  # noqa: E402

NS = "/inference_fault_test"
HW = (24, 32)
N_JOINTS = 6
TINY = BCConvConfig(cameras=("front",), image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,), group_norm_groups=4)


def _save(root, schema, version):
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    normalizer = Normalizer.fit(actions, rng.normal(size=(100, 14)))
    torch.manual_seed(version)
    policy = make_policy("bc_conv", TINY, normalizer)
    return save_checkpoint(policy, normalizer, schema, root, version, step=version, parent=version - 1 or None)


class _RaisesAfterFirstPass:
    """v2's weights load and pass the first forward pass, then every live tick raises (a device fault)."""

    def __init__(self, policy):
        self.policy, self.calls = policy, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def select_action(self, obs):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.policy.select_action(obs)


def _loader(path, **kw):
    policy, manifest = load_policy(path, **kw)
    return (_RaisesAfterFirstPass(policy) if manifest.version == 2 else policy), manifest


def test_raising_policy_does_not_kill_the_node(tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "ckpt"
    schema = PolicySchema.from_features(rig_features({"front": HW}, N_JOINTS))
    v1, v2 = _save(root, schema, 1), _save(root, schema, 2)
    outside = _save(tmp_path / "elsewhere", schema, 3)

    rclpy.init()  # InferenceNode lives in the default context, as in its process
    executor = SingleThreadedExecutor()
    node_ref = []
    runner = PolicyRunner(schema, on_event=lambda k, p: node_ref[0].on_runner_event(k, p), loader=_loader,
                          checkpoint_roots=[root])
    node = InferenceNode(runner, ObservationAssembler(("front",), max_skew_ms=400), ("front",),
                         ACTION_SPACES["ee_delta"], NS, enabled=False)
    node_ref.append(node)
    peer = rclpy.create_node("fault_test_peer", namespace=NS)
    actions, statuses, actives = [], [], []
    peer.create_subscription(JointState, "action", actions.append, COMMAND)
    peer.create_subscription(String, "inference/status", lambda m: statuses.append(json.loads(m.data)), STATUS)
    peer.create_subscription(String, "policy_active", lambda m: actives.append(json.loads(m.data)), LATCHED)
    pub_update = peer.create_publisher(String, "policy_update", LATCHED)
    pub_js = peer.create_publisher(JointState, "joint_states", SENSOR)
    pub_pose = peer.create_publisher(PoseStamped, "ee_pose", SENSOR)
    pub_img = peer.create_publisher(Image, "camera/front/image_raw", SENSOR)
    enable = peer.create_client(SetBool, "inference/enable")
    rollback = peer.create_client(Trigger, "inference/rollback")
    executor.add_node(node)
    executor.add_node(peer)
    errors = []

    def spin():
        try:
            while rclpy.ok():
                executor.spin_once(timeout_sec=0.05)
        except Exception as e:  # the node died: the test fails on it below
            errors.append(e)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    rng = np.random.default_rng(1)

    def tick():
        """One control step as the arm and camera publish it: state at t, then a frame of the world after t."""
        t = time.time_ns()
        state = SimpleNamespace(joint_names=[f"j{i}" for i in range(N_JOINTS)], joint_positions_rad=[0.1] * N_JOINTS,
                                gripper_opening=1.0, stamp_ns=t, ee_pose=[0.3, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0])
        js, pose = conv.arm_state_msgs(state, "base")
        pub_js.publish(js)
        pub_pose.publish(pose)
        time.sleep(0.01)
        pub_img.publish(conv.image_to_msg(rng.integers(0, 256, (*HW, 3), dtype=np.uint8), t + 1_000_000, "front"))
        time.sleep(0.05)
        return t

    def call(client, req):
        assert client.wait_for_service(timeout_sec=10)
        fut = client.call_async(req)
        _wait(fut.done, 10, "service reply")
        return fut.result()

    try:
        pub_update.publish(String(data=make_update(v1).to_json()))
        _wait(lambda: runner.active_version == 1, 30, "v1 active")
        assert call(enable, SetBool.Request(data=True)).success
        _wait(lambda: (tick() and False) or len(actions) >= 2, 20, "actions from v1")
        assert all(a.header.frame_id == "policy:bc_conv@v1" for a in actions)

        # v2 raises on live input: the node survives, holds that tick and falls back to v1.
        pub_update.publish(String(data=make_update(v2).to_json()))
        _wait(lambda: runner.stats.ticks and runner.wait_idle(0.01), 30, "v2 verified and staged")
        _wait(lambda: (tick() and False) or runner.stats.fallbacks == 1, 20, "fallback after v2 raised")
        n = len(actions)
        _wait(lambda: (tick() and False) or len(actions) > n, 20, "actions again, from v1")
        assert not errors and thread.is_alive()
        assert actions[-1].header.frame_id == "policy:bc_conv@v1"
        assert not any(a.header.frame_id.endswith("@v2") for a in actions)  # v2 never sent an action
        _wait(lambda: any("v2 faulted" in s.get("reason", "") for s in statuses), 5, "status naming the fault")
        st = [s for s in statuses if "v2 faulted" in s.get("reason", "")][-1]
        assert st["state"] == "acting" and st["active_version"] == 1 and st["policy_exceptions"] == 1
        assert "RuntimeError: CUDA error" in st["reason"]

        # Nothing older than v1 is good: the rollback service says so instead of doing anything.
        resp = call(rollback, Trigger.Request())
        assert not resp.success and "no good version to roll back to" in resp.message

        # A checkpoint outside the root is refused, with the reason on policy_active.
        pub_update.publish(String(data=make_update(outside).to_json()))
        _wait(lambda: any(a["version"] == 3 for a in actives), 10, "policy_active for v3")
        refused = [a for a in actives if a["version"] == 3][-1]
        assert refused["status"] == "rejected" and "outside the allowed checkpoint roots" in refused["reason"]
        assert runner.active_version == 1 and not errors and thread.is_alive()
    finally:
        rclpy.shutdown()
        thread.join(5)
        node.close()
        node.destroy_node()
        peer.destroy_node()
