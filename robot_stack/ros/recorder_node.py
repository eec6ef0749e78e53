"""Recorder node: cameras + joint_states/ee_pose + action_executed in, committed store episodes out.

Services: recorder/start (Trigger), recorder/stop (SetBool: data = success; reply JSON {episode, steps, dropped,
writer_dropped_steps, ...}), recorder/discard (Trigger). Status JSON on recorder/status. Thin adapter over
EpisodeRecorder.

Two different losses are reported: `dropped` = executed actions with no matching observation (a camera or
the state stream stalled), `writer_dropped_steps` = steps the EpisodeWriter refused because its buffer was
full (the disk did not keep up; such an episode cannot be committed). `writer_buffered_steps` against
`writer_max_buffered_steps` shows how close the disk is to falling behind while recording.

Usage: python -m robot_stack.ros.recorder_node store=data/stores/x.zarr [hydra overrides]
"""

from __future__ import annotations

import json
import time

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import RECORD_COMMAND, RECORD_SENSOR, SENSOR, STATUS


class StateJoiner:
    """joint_states and ee_pose are published with the same stamp each tick; emit the pair once both arrived."""

    def __init__(self, on_state):
        self.on_state = on_state
        self._js: JointState | None = None
        self._pose: PoseStamped | None = None

    def joints(self, msg: JointState) -> None:
        self._js = msg
        self._try()

    def pose(self, msg: PoseStamped) -> None:
        self._pose = msg
        self._try()

    def _try(self) -> None:
        if self._js is None or self._pose is None:
            return
        t = conv.time_to_ns(self._js.header.stamp)
        if t == conv.time_to_ns(self._pose.header.stamp):
            self.on_state(t, conv.state_from_msgs(self._js, self._pose), time.time_ns())
            self._js = self._pose = None


def subscribe_observations(node: Node, assembler, cameras, on_state=None, qos=SENSOR) -> StateJoiner:
    """Feed camera images and the joined state into an ObservationAssembler (shared with the inference node,
    which wants only the freshest samples; the recorder passes a deep queue so it never loses a step)."""
    def state_cb(t, state, recv):
        assembler.add_state(t, state, recv)
        if on_state is not None:
            on_state(t)

    def image_cb(cam):
        def cb(msg: Image):
            assembler.add_image(cam, conv.time_to_ns(msg.header.stamp), conv.msg_to_image(msg), time.time_ns())
            if on_state is not None:
                on_state(None)
        return cb

    joiner = StateJoiner(state_cb)
    node.create_subscription(JointState, "joint_states", joiner.joints, qos)
    node.create_subscription(PoseStamped, "ee_pose", joiner.pose, qos)
    for cam in cameras:
        node.create_subscription(Image, f"camera/{cam}/image_raw", image_cb(cam), qos)
    return joiner


class RecorderNode(Node):
    def __init__(self, recorder, cameras, namespace: str):
        super().__init__("recorder", namespace=namespace)
        self.recorder = recorder
        self.pub_status = self.create_publisher(String, "recorder/status", STATUS)
        subscribe_observations(self, recorder.assembler, cameras, on_state=lambda _t: self._flush_pending(),
                               qos=RECORD_SENSOR)
        self.create_subscription(JointState, "action_executed", self._on_executed, RECORD_COMMAND)
        self._inputs = ["action_executed", "joint_states", "ee_pose", *(f"camera/{c}/image_raw" for c in cameras)]
        self.create_service(Trigger, "recorder/start", self._on_start)
        self.create_service(SetBool, "recorder/stop", self._on_stop)
        self.create_service(Trigger, "recorder/discard", self._on_discard)
        # Per-episode labels from a conductor (the practice node): JSON of EpisodeMeta fields, set through the
        # standard SetParameters service before recorder/stop (a synchronous reply, so it cannot arrive after the
        # stop as a topic could). Validated on set; used by the next stop only, then cleared.
        self._episode_meta: dict | None = None
        self.declare_parameter("episode_meta", "")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0, self._publish_status)
        self.create_timer(0.1, self._flush_pending)   # a step whose frames never come is dropped after the grace

    def _on_executed(self, msg: JointState) -> None:
        _, values, stamp_ns, source = conv.msg_to_action(msg)
        self._guarded(lambda: self.recorder.on_executed(values, stamp_ns, source))

    def _flush_pending(self) -> None:
        """A frame arrived or time passed: steps that waited for their observation are recorded or, past the
        grace, dropped."""
        if self.recorder.n_pending:
            self._guarded(self.recorder.flush_pending)

    def _guarded(self, step) -> None:
        had_fault, before = self.recorder.fault, (self.recorder.n_steps, self.recorder.n_dropped)
        try:
            # A store failure (disk full) does not raise: the recorder stops recording and keeps the reason
            # in `fault`, so this node, and the rig the supervisor would tear down with it, stay up (review C4).
            step()
        except ValueError as e:  # unknown source tag or schema violation: say so, keep recording others
            self.get_logger().error(f"step not recorded: {e}")
        if self.recorder.fault and self.recorder.fault != had_fault:
            self.get_logger().error(self.recorder.fault)
            self._publish_status()
        elif self.recorder.recording and (self.recorder.n_steps, self.recorder.n_dropped) != before:
            # Per step (control rate, a few Hz): lets a conductor see that every executed action was
            # accounted for (recorded or dropped) before it stops the episode.
            self._publish_status()

    def unconnected_inputs(self) -> list[str]:
        """Topics nobody publishes to us yet. DDS discovery can finish after our services are up, and a volatile
        topic loses what is sent before it is matched: an episode must not start until every input is connected."""
        ns = self.get_namespace().rstrip("/")
        return [t for t in self._inputs if self.count_publishers(f"{ns}/{t}") == 0]

    def _on_start(self, req, resp):
        missing = self.unconnected_inputs()
        if missing:
            resp.success, resp.message = False, f"waiting for inputs: no publisher on {missing} yet"
            return resp
        try:
            self.recorder.start()
            resp.success, resp.message = True, "recording"
        except Exception as e:
            resp.success, resp.message = False, str(e)
        self._publish_status()
        return resp

    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        from robot_stack.store import EpisodeMeta, StoreSchemaError

        for p in params:
            if p.name != "episode_meta":
                continue
            if not p.value:
                self._episode_meta = None
                continue
            try:
                d = json.loads(p.value)
                if not isinstance(d, dict):
                    raise ValueError("expected a JSON object of EpisodeMeta fields")
                EpisodeMeta.from_any({"task": self.recorder.task, "source": "sim", **d})  # validates every field
            except (ValueError, StoreSchemaError) as e:
                return SetParametersResult(successful=False, reason=f"episode_meta refused: {e}")
            self._episode_meta = d
        return SetParametersResult(successful=True)

    def _clear_episode_meta(self) -> None:
        from rclpy.parameter import Parameter

        if self._episode_meta is not None or self.get_parameter("episode_meta").value:
            self.set_parameters([Parameter("episode_meta", value="")])

    def _on_stop(self, req, resp):
        if self.recorder.recording:
            # Steps still waiting for their frames are settled now, so the reply's counts include them.
            self.recorder.flush_pending(final=True)
        stats = self.recorder.writer_stats()  # before stop(): the writer is gone afterwards
        meta, self._episode_meta = self._episode_meta, None
        self._clear_episode_meta()
        try:
            steps, dropped = self.recorder.n_steps, self.recorder.n_dropped
            idx = self.recorder.stop(success=bool(req.data), meta_updates=meta)
            resp.success = idx is not None
            resp.message = json.dumps({"episode": idx, "steps": steps, "dropped": dropped, **stats})
        except Exception as e:
            # e.g. WriterOverrunError: the reply still says how many steps the writer dropped
            resp.success, resp.message = False, json.dumps({"error": str(e), **stats})
        self._publish_status()
        return resp

    def _on_discard(self, req, resp):
        self._episode_meta = None
        self._clear_episode_meta()
        self.recorder.discard()
        resp.success, resp.message = True, "discarded"
        return resp

    def _publish_status(self) -> None:
        r = self.recorder
        self.pub_status.publish(conv.json_msg({
            "recording": r.recording, "steps": r.n_steps, "dropped": r.n_dropped, "pending": r.n_pending,
            "episodes": r.store.n_episodes, "store": str(r.store.path), "fault": r.fault, **r.writer_stats()}))

    def close(self) -> None:
        if self.recorder.recording:
            self.recorder.discard()  # an unfinished episode is never committed
        self.recorder.store.close()


def build(cfg):
    from robot_stack.store import TrajectoryStore
    from robot_stack.store.align import ObservationAssembler
    from robot_stack.store.recorder import EpisodeRecorder, schema_for_rig

    cams = tuple(cfg.rig.cameras)
    store = TrajectoryStore.open_or_create(str(cfg.store), schema_for_rig(cfg.rig))
    assembler = ObservationAssembler(cams, max_skew_ms=float(cfg.recorder.max_obs_age_ms))
    recorder = EpisodeRecorder(store, assembler, task=str(cfg.task.language), phase=cfg.task.get("phase"),
                               flush_every=int(cfg.recorder.flush_every),
                               obs_grace_s=float(cfg.recorder.get("obs_grace_ms", 0)) / 1000.0)
    node = RecorderNode(recorder, cams, namespace=str(cfg.rig.namespace))
    node.get_logger().info(f"recording to {store.path} ({store.n_episodes} episodes committed)")
    return [node]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "recorder")


if __name__ == "__main__":
    raise SystemExit(main())
