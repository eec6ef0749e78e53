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
import threading
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import STATUS

GRAPH_SERVICES = ("recorder/start", "recorder/stop", "recorder/discard", "inference/enable")
SIM_SERVICES = ("sim/reset", "sim/evaluate", "sim/intervene")


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

        judge = ClassifierJudge(load_classifier(Path(judge_spec)))
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
