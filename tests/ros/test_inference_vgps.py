"""The inference node with V-GPS over real rclpy topics (issue 13): a diffusion policy's K = 10 samples re-ranked by a
critic every tick, 0 missed ticks at the arm's 5 Hz; the critic arrives on critic_update, is reported on critic_active,
and a new critic version swaps in mid-run without a missed tick and without touching the policy; the chosen index, Q
spread and timing are on inference/status. Built through the node's own `build` wiring (inference.selection=vgps)."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from omegaconf import OmegaConf  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from robot_stack.inference.manifest import make_update  # noqa: E402
from robot_stack.inference.runner import PolicyRunner  # noqa: E402
from robot_stack.policies.base import make_policy  # noqa: E402
from robot_stack.policies.checkpoint import CRITIC_KIND, PolicySchema, save_checkpoint  # noqa: E402
from robot_stack.policies.normalizer import Normalizer  # noqa: E402
from robot_stack.ros import conversions as conv  # noqa: E402
from robot_stack.ros.inference_node import InferenceNode, _build_selector  # noqa: E402
from robot_stack.ros.qos import COMMAND, LATCHED, SENSOR, STATUS  # noqa: E402
from robot_stack.store.align import ObservationAssembler  # noqa: E402
from robot_stack.store.recorder import parse_source  # noqa: E402
from robot_stack.types import ACTION_SPACES, rig_features  # noqa: E402
from robot_stack_testing.waiting import wait_until as _wait  # noqa: E402

NS = "/inference_vgps_test"
N_JOINTS = 6
TASK = "put the cube in the bowl"
PERIOD_S = 0.2  # the sim arm's 5 Hz control step
DIFFUSION = {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 16, "n_obs_steps": 2, "horizon": 8,
             "n_action_steps": 4, "down_dims": [16, 32], "unet_groups": 4, "num_inference_steps": 3,
             "fixed_action_dims": [3, 4]}
CRITIC = {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 16, "actor_hidden_dims": [32],
          "critic_hidden_dims": [32], "conditioning": "language", "tasks": [TASK, "put the cube on the plate"],
          "task_embedding_dim": 8, "low_dim_film": True, "fixed_action_dims": [3, 4], "extra": {"kind": CRITIC_KIND}}


def _normalizer():
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    return Normalizer.fit(actions, rng.normal(size=(100, 14)))


def _save(kind, root, schema, version):
    torch.manual_seed(version)
    norm = _normalizer()
    model = make_policy(*(("diffusion", DIFFUSION) if kind == "policy" else ("actor_critic", CRITIC)), norm)
    if kind == "critic":
        with torch.no_grad():
            model.task_embeddings.normal_()
            model.critic.heads.weights[-1].mul_(100.0)    # Q spread O(1) across samples, as a trained critic's
    return save_checkpoint(model, norm, schema, root, version, step=version, parent=version - 1 or None)


def test_vgps_node_reranks_every_tick_and_swaps_the_critic_without_missing_one(tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "ckpt"
    schema = PolicySchema.from_features(rig_features({}, N_JOINTS))
    policy_v1 = _save("policy", root, schema, 1)
    critic_v1, critic_v2 = _save("critic", root / "critic", schema, 1), _save("critic", root / "critic", schema, 2)

    rclpy.init()
    executor = SingleThreadedExecutor()
    node_ref = []
    # The node's own wiring: inference.selection=vgps builds the selector and a critic runner confined to
    # ${checkpoints}/critic, reporting to the node.
    cfg = OmegaConf.create({"checkpoints": str(root)})
    inf = OmegaConf.create({"selection": "vgps", "vgps_k": 10, "vgps_beta": 0.0, "critic": "", "critic_roots": []})
    selector, critic_runner = _build_selector(inf, schema, node_ref, cfg)
    assert critic_runner.checkpoint_kind == CRITIC_KIND and selector.k == 10
    runner = PolicyRunner(schema, on_event=lambda k, p: node_ref[0].on_runner_event(k, p), checkpoint_roots=[root],
                          selector=selector)
    node = InferenceNode(runner, ObservationAssembler((), max_skew_ms=400), (), ACTION_SPACES["ee_delta"], NS,
                         enabled=False, critic_runner=critic_runner)
    node_ref.append(node)
    peer = rclpy.create_node("vgps_test_peer", namespace=NS)
    actions, statuses, critic_actives = [], [], []
    peer.create_subscription(JointState, "action", actions.append, COMMAND)
    peer.create_subscription(String, "inference/status", lambda m: statuses.append(json.loads(m.data)), STATUS)
    peer.create_subscription(String, "critic_active", lambda m: critic_actives.append(json.loads(m.data)), LATCHED)
    pub_policy = peer.create_publisher(String, "policy_update", LATCHED)
    pub_critic = peer.create_publisher(String, "critic_update", LATCHED)
    pub_js = peer.create_publisher(JointState, "joint_states", SENSOR)
    from geometry_msgs.msg import PoseStamped

    pub_pose = peer.create_publisher(PoseStamped, "ee_pose", SENSOR)
    enable = peer.create_client(SetBool, "inference/enable")
    executor.add_node(node)
    executor.add_node(peer)
    errors = []

    def spin():
        try:
            while rclpy.ok():
                executor.spin_once(timeout_sec=0.02)
        except Exception as e:  # the node died: the test fails on it below
            errors.append(e)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    rng = np.random.default_rng(1)

    def run_ticks(n):
        """n control steps at 5 Hz, as the arm publishes them, whatever the node does."""
        t_next = time.monotonic()
        for _ in range(n):
            state = SimpleNamespace(joint_names=[f"j{i}" for i in range(N_JOINTS)],
                                    joint_positions_rad=list(rng.normal(0, 0.3, N_JOINTS)), gripper_opening=1.0,
                                    stamp_ns=time.time_ns(), ee_pose=[0.3, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0])
            js, pose = conv.arm_state_msgs(state, "base")
            pub_js.publish(js)
            pub_pose.publish(pose)
            t_next += PERIOD_S
            time.sleep(max(0.0, t_next - time.monotonic()))

    try:
        pub_policy.publish(String(data=make_update(policy_v1).to_json()))
        pub_critic.publish(String(data=make_update(critic_v1).to_json()))
        _wait(lambda: runner.active_version == 1 and critic_runner.active_version == 1, 30, "policy and critic v1")
        _wait(lambda: any(a["version"] == 1 and a["status"] == "ok" for a in critic_actives), 10, "critic_active v1")
        node.set_parameters([rclpy.parameter.Parameter("task_language", value=TASK)])
        assert enable.wait_for_service(timeout_sec=10)
        fut = enable.call_async(SetBool.Request(data=True))
        _wait(fut.done, 10, "inference/enable")

        run_ticks(10)
        _wait(lambda: len(actions) >= 10, 5, "10 actions")
        critic_seen = [runner.last_selection["critic_version"]]
        # a new critic while acting: verified in the background, swapped at the start of a tick
        pub_critic.publish(String(data=make_update(critic_v2).to_json()))
        run_ticks(15)
        _wait(lambda: len(actions) >= 25, 5, "25 actions")
        critic_seen.append(runner.last_selection["critic_version"])

        assert not errors and thread.is_alive()
        assert node.missed_ticks == 0 and node.ticks == 25 and node.step_errors == 0
        assert critic_seen == [1, 2] and critic_runner.stats.swaps == 2
        assert runner.active_version == 1 and runner.stats.swaps == 1        # the policy never moved
        # the source tag the recorder files as the episode's policy_version names the critic of every step
        tags = [a.header.frame_id for a in actions]
        assert tags[0] == "policy:diffusion@v1+vgps:critic@v1:K10:beta0"
        assert tags[-1] == "policy:diffusion@v1+vgps:critic@v2:K10:beta0"
        assert set(tags) == {tags[0], tags[-1]}
        assert parse_source(tags[-1]) == ("policy", "diffusion@v1+vgps:critic@v2:K10:beta0")
        _wait(lambda: any(a["version"] == 2 and a["status"] == "ok" for a in critic_actives), 5, "critic_active v2")
        _wait(lambda: any(s.get("critic_version") == 2 and s.get("selection") for s in statuses), 3,
              "status with the selection")
        st = [s for s in statuses if s.get("critic_version") == 2 and s.get("selection")][-1]
        sel = st["selection"]
        assert sel["k"] == 10 and 0 <= sel["index"] < 10 and sel["q_spread"] > 0 and sel["select_ms"] > 0
        assert "fallback" not in sel and st["critic_fallbacks"] == 0 and st["missed_ticks"] == 0
    finally:
        rclpy.shutdown()
        thread.join(5)
        node.close()
        node.destroy_node()
        peer.destroy_node()


@pytest.mark.parametrize("learner, topic", [("vgps", "critic_update"), ("vgps_state", "critic_update"),
                                            ("calql_state", "policy_update"), ("bc", "policy_update")])
def test_the_learner_node_announces_critics_on_critic_update(learner, topic):
    from hydra import compose, initialize_config_module

    from robot_stack.ros.learner_node import update_topic

    with initialize_config_module("robot_stack.conf", version_base=None):
        cfg = compose("robot_stack", overrides=[f"learner={learner}", "task=put_cube_in_bowl", "data_dir=/tmp"])
    assert update_topic(cfg.learner) == topic
