"""Practice node: runs a reset-free PracticeSession (robot_stack/practice) against the graph, on a worker thread.

    practice/start|pause|resume|stop (Trigger) ─► PracticeSession controls        practice/status (JSON, ≥ 1 Hz)
    practice/intervention (Trigger): "I reset the scene" (real rigs)                 learner/status ─► step, loss
                     worker thread: PracticeSession.run() ─► RosPracticeRig ─► sim/reset · inference · recorder

The counts resume from the store's committed practice episodes, so a respawned node carries on where the last one
stopped (attempt number, phase, success per direction, interventions). Dying mid-attempt loses only that attempt:
the recorder never commits an episode the practice node did not stop.

Usage: python -m robot_stack.ros.practice_node task=put_cube_in_bowl practice.judge=<classifier dir|ground_truth>
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import STATUS

GRAPH_SERVICES = ("recorder/start", "recorder/stop", "recorder/discard", "inference/enable")
SIM_SERVICES = ("sim/reset", "sim/evaluate", "sim/intervene")
HEARTBEAT_TIMEOUT_S = 3.0  # a critical node's status silent this long: treated as dead


class _RigTruth:
    """GroundTruthJudge's `sim` over the sim rig's sim/evaluate (oracle controls only)."""

    def __init__(self, rig):
        self.rig = rig

    def task_success(self, task: str) -> bool:
        return bool(self.rig.ground_truth(task))


class PracticeNode(Node):
    def __init__(self, make_session, rig, client, is_sim: bool, start_on_launch: bool, status_hz: float,
                 namespace: str, ready_timeout_s: float = 120.0):
        super().__init__("practice", namespace=namespace)
        self.make_session, self.rig, self.client, self.is_sim = make_session, rig, client, is_sim
        self.ready_timeout_s = ready_timeout_s
        self.session = None
        self.worker: threading.Thread | None = None
        self.error = ""
        self._lock = threading.Lock()
        self.pub_status = self.create_publisher(String, "practice/status", STATUS)
        self.create_subscription(String, "learner/status", self._on_learner, STATUS)
        for name, cb in (("start", self._on_start), ("pause", self._on_pause), ("resume", self._on_resume),
                         ("stop", self._on_stop), ("intervention", self._on_intervention)):
            self.create_service(Trigger, f"practice/{name}", cb)
        self.create_timer(1.0 / max(float(status_hz), 1.0), self._publish_status)
        self._learner: dict = {}
        # Processes practice cannot go on without, each with the status topic that proves it alive (1 Hz or
        # faster). Under the supervisor an exit is known at once (node_events.jsonl); under ros2 launch a killed
        # process is noticed when its status goes quiet (DDS keeps a SIGKILLed participant in the graph for its
        # lease, ~20 s, so the graph itself cannot tell).
        from diagnostic_msgs.msg import DiagnosticArray

        self.critical = {"recorder": "recorder/status", "inference": "inference/status",
                         ("sim_rig" if is_sim else "rig"): "arm/status"}
        self._heard: dict[str, float] = {}
        for proc, topic in self.critical.items():
            msg_type = DiagnosticArray if topic == "arm/status" else String
            self.create_subscription(msg_type, topic, lambda _m, p=proc: self._heard.__setitem__(p, time.monotonic()),
                                     STATUS)
        self._events_path = os.environ.get("ROBOT_STACK_NODE_EVENTS", "")
        # Only exits from now on (a respawned practice node must not pause for the crash that restarted it).
        self._events_offset = os.path.getsize(self._events_path) if os.path.isfile(self._events_path) else 0
        self._down: dict[str, float] = {}     # process -> when it was seen to die
        self._started: dict[str, float] = {}  # process -> when the supervisor started it again
        self._paused_for: str | None = None   # set while practice is paused because a node is gone
        self.create_timer(0.1, self._watch_graph)
        if start_on_launch:
            self._start()

    # ------------------------------------------------------------------ worker
    def _start(self) -> str:
        with self._lock:
            if self.worker is not None and self.worker.is_alive():
                return "practice is already running (practice/pause, practice/stop)"
            self.error = ""
            self.worker = threading.Thread(target=self._run, name="practice", daemon=True)
            self.worker.start()
        return "practice starting"

    def _run(self) -> None:
        try:
            needed = GRAPH_SERVICES + (SIM_SERVICES if self.is_sim else ("arm/home",))
            self.client.wait_ready(list(needed), timeout_s=self.ready_timeout_s)
            # A practice node that died mid-attempt (and was respawned) left the policy enabled and an episode
            # open: nothing of that attempt is committed, and the arm holds before anything else.
            self.rig.hold()
            self.rig.discard_attempt()
            self.session = self.make_session()
            self.session.run()
        except Exception as e:  # noqa: BLE001 - reported on practice/status and the log; the arm is held
            self.error = f"{type(e).__name__}: {e}"
            self.get_logger().error(f"practice stopped: {self.error}")
            try:
                self.rig.hold()
            except Exception as hold_error:  # noqa: BLE001
                self.get_logger().error(f"could not hold the arm through inference/enable: {hold_error}")
        self._publish_status()

    def close(self) -> None:
        if self.session is not None:
            self.session.stop("node shutting down")
        if self.worker is not None:
            self.worker.join(timeout=5.0)
        self.client.close()

    # ------------------------------------------------------------------ faults: a node of the graph dies
    def _watch_graph(self) -> None:
        """Pause as soon as a critical process dies (the attempt in flight is discarded and the policy disabled,
        so the arm holds), naming it and its exit; resume once it is back (respawned) and heard from again."""
        now = time.monotonic()
        for event in self._new_events():
            proc = event.get("node")
            if proc not in self.critical:
                continue
            if event.get("action") == "started":
                self._started[proc] = now
            else:
                self._down[proc] = now
                self._started.pop(proc, None)
                self._fault(f"node '{proc}' exited with {event.get('exit', event.get('code'))}")
        if self.session is None:
            return
        for proc in self.critical:
            heard = self._heard.get(proc)
            if proc not in self._down and heard is not None and now - heard > HEARTBEAT_TIMEOUT_S:
                self._down[proc] = now - HEARTBEAT_TIMEOUT_S
                self._fault(f"node '{proc}' went quiet ({HEARTBEAT_TIMEOUT_S:.0f} s without {self.critical[proc]})")
        for proc, since in list(self._down.items()):
            # Back = a status from the new process. Under the supervisor: heard well after it was started again (a
            # late message of the dead one, or a stale DDS match, must not count); otherwise after the silence.
            if self._events_path:
                started = self._started.get(proc)
                back = started is not None and self._heard.get(proc, 0.0) > started + 1.0
            else:
                back = self._heard.get(proc, 0.0) > since + 0.5
            if back:
                del self._down[proc]
        if not self._down and self._paused_for is not None:
            needed = list(GRAPH_SERVICES + (SIM_SERVICES if self.is_sim else ("arm/home",)))
            if all(self.client._clients[s].service_is_ready() for s in needed):
                self.get_logger().info(f"resuming practice: every node is back ({self._paused_for})")
                self._paused_for = None
                self.session.resume()
                self._publish_status()

    def _fault(self, what: str) -> None:
        if self.session is None or self._paused_for is not None:
            return
        self._paused_for = f"{what}; practice holds the arm and waits for it to come back (respawn)"
        self.get_logger().error(self._paused_for)
        self.session.pause(self._paused_for)
        self._publish_status()

    def _new_events(self) -> list[dict]:
        """New lines of the supervisor's node_events.jsonl (ROBOT_STACK_NODE_EVENTS), if there is one."""
        if not self._events_path or not os.path.isfile(self._events_path):
            return []
        with open(self._events_path, encoding="utf-8") as f:
            f.seek(self._events_offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self._events_offset += len(complete.encode())
        out = []
        for line in complete.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    # ------------------------------------------------------------------ services
    def _reply(self, resp, ok: bool, message: str):
        resp.success, resp.message = ok, message
        self._publish_status()
        return resp

    def _on_start(self, req, resp):
        return self._reply(resp, True, self._start())

    def _on_pause(self, req, resp):
        if self.session is None:
            return self._reply(resp, False, "practice has not started (practice/start)")
        return self._reply(resp, True, self.session.pause("paused via practice/pause"))

    def _on_resume(self, req, resp):
        if self.session is None:
            return self._reply(resp, False, "practice has not started (practice/start)")
        return self._reply(resp, True, self.session.resume())

    def _on_stop(self, req, resp):
        if self.session is None:
            return self._reply(resp, False, "practice has not started")
        return self._reply(resp, True, self.session.stop("stopped via practice/stop"))

    def _on_intervention(self, req, resp):
        self.rig.intervention_done()
        return self._reply(resp, True, "reset acknowledged; practice continues with a forward attempt")

    # ------------------------------------------------------------------ status
    def _on_learner(self, msg: String) -> None:
        try:
            self._learner = conv.msg_json(msg)
        except conv.MessageError:
            return

    def _publish_status(self) -> None:
        if self.session is None:
            status = {"state": "failed" if self.error else "starting", "reason": self.error or "waiting for the graph"}
        else:
            self.session.extra_status["learner"] = {k: self._learner.get(k) for k in ("state", "step", "loss", "phase")
                                                    if k in self._learner}
            status = self.session.status()
            if self.error:
                status.update(state="failed", reason=self.error)
        self.pub_status.publish(String(data=json.dumps(status, sort_keys=True, default=str)))


def build(cfg):
    from robot_stack.practice.counts import PracticeCounts
    from robot_stack.practice.judge import ClassifierJudge, GroundTruthJudge
    from robot_stack.practice.session import PracticeConfig, PracticeSession, TaskPair
    from robot_stack.ros.practice_rig import RosPracticeRig
    from robot_stack.ros.rig_client import RigClient

    p = cfg.practice
    is_sim = bool(cfg.rig.get("sim_arm")) or str(cfg.rig.name).startswith("sim")
    pair = TaskPair.from_sim_tasks(str(cfg.task.name), str(p.backward_task) or None)
    judge_spec = str(p.judge)
    if not judge_spec:
        raise ValueError("practice.judge is empty: name a success-classifier checkpoint directory (train one with "
                         "robot_stack.practice.classifier) or, in sim only, practice.judge=ground_truth")
    if judge_spec == "ground_truth" and not is_sim:
        raise ValueError("practice.judge=ground_truth needs the sim (there is no ground truth on a real rig); "
                         "name a success-classifier checkpoint directory")
    cameras = tuple(dict(cfg.rig.cameras))
    client = RigClient(str(cfg.rig.namespace), name="practice_rig")
    rig = RosPracticeRig(client, cameras, is_sim=is_sim, explore=bool(p.explore),
                         gripper_hold_steps=int(p.gripper_hold_steps))
    if judge_spec == "ground_truth":
        judge = GroundTruthJudge(_RigTruth(rig))
    else:
        from robot_stack.practice.classifier import load_classifier

        base_dir = str(p.judge_base_dir)   # a vlm classifier's base, when it lives elsewhere on this machine
        overrides = {"pretrained_dir": base_dir} if base_dir else None
        judge = ClassifierJudge(load_classifier(Path(judge_spec), overrides=overrides))
    config = PracticeConfig(horizon_steps=int(p.horizon_steps), max_attempts=int(p.max_attempts) or None,
                            window=int(p.window), stuck_attempts=int(p.stuck_attempts),
                            scheduled_reset_steps=int(p.scheduled_reset_steps))

    def make_session():
        counts = PracticeCounts(config.window)
        store_path = Path(str(cfg.store))
        if store_path.exists():
            from robot_stack.store import TrajectoryStore

            with TrajectoryStore.open(store_path, mode="r") as store:
                counts = PracticeCounts.from_store(store, config.window, tasks=pair.languages)
        return PracticeSession(rig, judge, pair, config, counts=counts)

    node = PracticeNode(make_session, rig, client, is_sim, bool(p.start_on_launch), float(p.status_hz),
                        namespace=str(cfg.rig.namespace))
    node.get_logger().info(f"practice: {pair.forward[1]!r} <-> {pair.backward[1]!r}, horizon {config.horizon_steps} "
                           f"steps, judge {judge.name}, store {cfg.store}")
    return [node]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "practice")


if __name__ == "__main__":
    raise SystemExit(main())
