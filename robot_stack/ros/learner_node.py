"""Learner node: runs the ROS-free LearnerService in a thread and announces each checkpoint on
`policy_update` (reliable, transient-local: an inference node that starts later still gets the latest).

If the learner thread dies (store error after a compaction, disk full on save, OOM, NaN), the node publishes
{"state": "failed", "error": ...} on learner/status, then exits non-zero about a second later, so the
supervisor sees a dead learner instead of a live process training nothing (review D1). The arm does not need
the learner to be safe: a profile can mark it `required: false` so its death does not stop the rig.

With `checkpoint_server.listen=HOST:PORT` the learner may run on another machine than the inference node
(a GPU workstation beside the robot computer, no shared filesystem):

    save_checkpoint ─► checkpoints/v0003 ─► CheckpointServer(checkpoints) serves GET /v0003/<file> (read-only)
    announce ─► policy_update {"path": "http://<url>/v0003", "sha256": ...} ─► the inference node downloads,
                                                                              verifies every hash, loads

Usage: python -m robot_stack.ros.learner_node store=... checkpoints=... [learner.* overrides]
       [checkpoint_server.listen=0.0.0.0:8770 checkpoint_server.url=http://gpu-ws:8770]
"""

from __future__ import annotations

import json

from rclpy.node import Node
from std_msgs.msg import String

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import LATCHED, STATUS


class LearnerThreadDied(RuntimeError):
    """Raised from the node's timer once the learner thread is dead, ending the spin (exit code 1)."""


# Timer ticks (1 s each) between the first failed status and the exit: subscribers get the reason first.
_EXIT_AFTER_TICKS = 1


class LearnerNode(Node):
    def __init__(self, service_factory, namespace: str, checkpoint_server=None, update_topic: str = "policy_update"):
        super().__init__("learner", namespace=namespace)
        # Set before the service starts: a resuming learner announces its latest checkpoint right away.
        self.checkpoint_server = checkpoint_server
        # critic_update for a critic learner (learner=vgps: its own checkpoint kind, swapped by the inference node
        # independently of the policy), policy_update otherwise.
        self.pub_update = self.create_publisher(String, update_topic, LATCHED)
        # A learner that writes both kinds (PA-RL: base-policy versions and critic versions) announces each checkpoint
        # on its kind's topic (announce_topic); the configured topic stays the default.
        self.update_topic = update_topic
        other = "policy_update" if update_topic == "critic_update" else "critic_update"
        self._pubs = {update_topic: self.pub_update, other: self.create_publisher(String, other, LATCHED)}
        self.pub_status = self.create_publisher(String, "learner/status", STATUS)
        self.service = service_factory(self._announce, self._progress)
        self.service.start()
        self._death_reported = False
        self._ticks_since_death = 0
        self.create_timer(1.0, self._watch)

    def _watch(self) -> None:
        # A dead learner thread is reported on learner/status every second (and logged once), never silent.
        if self.service.error is None:
            return
        if not self._death_reported:
            self.get_logger().error(f"learner thread died: {self.service.error}; the rig keeps running the "
                                    "current policy; restart the learner to resume from its last checkpoint")
            self._death_reported = True
            self._ticks_since_death = 0
        self.pub_status.publish(String(data=json.dumps({"state": "failed", "error": self.service.error})))
        if self._ticks_since_death >= _EXIT_AFTER_TICKS:
            raise LearnerThreadDied(f"learner thread died: {self.service.error}; exiting so the supervisor "
                                    "reports it (restart the learner: it resumes from its last checkpoint)")
        self._ticks_since_death += 1

    def _announce(self, update) -> None:
        # Called from the learner thread; rclpy publishers may be used from any thread.
        topic = announce_topic(update, self.update_topic)   # read from the local checkpoint, before a URL replaces it
        if self.checkpoint_server is not None:
            # The robot cannot read our disk: announce where our server serves it (same sha256, same version).
            update = self.checkpoint_server.announce(update)
        self._pubs[topic].publish(String(data=update.to_json()))
        self.get_logger().info(f"announced checkpoint v{update.version}: {update.path}")

    def _progress(self, info: dict) -> None:
        # The library already logs a progress line; dashboards and the conductor read this topic.
        self.pub_status.publish(conv.json_msg({k: float(v) for k, v in info.items()}))

    def close(self) -> None:
        self.service.stop()
        self.service.join(timeout_s=10.0)
        if self.checkpoint_server is not None:
            self.checkpoint_server.close()


def update_topic(learner_cfg) -> str:
    """Where this learner's checkpoints are announced: critic_update when it trains a critic (policy_config.extra.kind
    "critic", learner=vgps), else policy_update."""
    extra = (learner_cfg.get("policy_config") or {}).get("extra") or {}
    return "critic_update" if extra.get("kind") == "critic" else "policy_update"


def announce_topic(update, default: str) -> str:
    """The topic of one announced checkpoint: critic_update for a checkpoint of kind "critic" (its config.json,
    robot_stack.policies.checkpoint.checkpoint_kind), policy_update for a policy, `default` when the local
    config.json cannot be read. PA-RL's learner publishes its base policy and its critic from one service."""
    from pathlib import Path

    from robot_stack.policies.checkpoint import CONFIG_FILE, CRITIC_KIND, checkpoint_kind

    try:
        kind = checkpoint_kind(json.loads((Path(update.path) / CONFIG_FILE).read_text()))
    except (OSError, ValueError):
        return default
    return "critic_update" if kind == CRITIC_KIND else "policy_update"


def build(cfg):
    import torch

    from robot_stack.learn.services import service_builder
    from robot_stack.policies.remote import server_from_config

    # The learner shares 2 CPU cores with the sim, recorder and inference node: one thread keeps the
    # control loop on time. On a GPU box, raise it with learner.torch_threads.
    torch.set_num_threads(int(cfg.learner.get("torch_threads", 1)))
    # learner.algo -> service builder by registry lookup (robot_stack.learn.services); unknown names fail here.
    builder = service_builder(str(cfg.learner.algo))

    def factory(announce, progress):
        return builder(cfg, announce, progress)

    server = server_from_config(cfg.get("checkpoint_server"), cfg.checkpoints)
    node = LearnerNode(factory, namespace=str(cfg.rig.namespace), checkpoint_server=server,
                       update_topic=update_topic(cfg.learner))
    served = f", served at {server.url}" if server is not None else ""
    node.get_logger().info(f"learner up: {cfg.learner.algo} on {cfg.store} -> {cfg.checkpoints}{served} "
                           f"(starts at {cfg.learner.min_episodes} eligible episodes)")
    return [node]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "learner")


if __name__ == "__main__":
    raise SystemExit(main())
