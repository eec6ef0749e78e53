"""RosPracticeRig: the `PracticeRig` of the ROS graph, driven from the practice node's worker thread.

    run_attempt(task, language, horizon)
      sim/reset (reset-free sim: the arm goes home, the scene stays)  |  arm/home on a real rig
      inference: task_language, explore  (SetParameters, synchronous)  ─► recorder/start ─► inference/enable true
      count action_executed until `horizon` steps (or pause/stop, or the arm faults)  ─► inference/enable false
      wait until the recorder has every executed step; the newest camera frames + state = the final observation
    commit_attempt(meta) ─► recorder episode_meta (SetParameters) ─► recorder/stop(success)  ─► episode index
    discard_attempt()    ─► recorder/discard
    ground_truth / problems ─► sim/evaluate (task_success, irreversible); None / [] on a real rig
    reset(kind)          ─► sim/intervene (counted)  |  real rig: wait for a person's practice/intervention call

All waits are bounded and name the node that did not answer. No practice logic here (robot_stack/practice).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from sensor_msgs.msg import JointState

from robot_stack.practice.session import AttemptRun
from robot_stack.ros.params import set_remote_parameters
from robot_stack.ros.qos import RECORD_COMMAND
from robot_stack.types import STATE_KEY, image_key

log = logging.getLogger(__name__)
POLL_S = 0.05
FAULT_STATES = ("fault", "estopped")


class RosPracticeRig:
    def __init__(self, client, cameras: tuple[str, ...], is_sim: bool, explore: bool = True,
                 gripper_hold_steps: int = 5, settle_s: float = 0.4, step_timeout_s: float = 10.0):
        from robot_stack.ros import conversions as conv

        self.client, self.cameras, self.is_sim = client, tuple(cameras), bool(is_sim)
        self.explore, self.gripper_hold_steps = bool(explore), int(gripper_hold_steps)
        self.settle_s, self.step_timeout_s = float(settle_s), float(step_timeout_s)
        self._lock = threading.Lock()
        self._executed = 0
        self._intervention_done = threading.Event()
        for c in self.cameras:
            client.subscribe_camera(c)

        def on_executed(msg: JointState) -> None:
            with self._lock:
                self._executed += 1

        self._conv = conv
        client.node.create_subscription(JointState, "action_executed", on_executed, RECORD_COMMAND)

    # ------------------------------------------------------------------ operator side (node thread)
    def intervention_done(self) -> None:
        """A person reset the scene (practice/intervention service, or a key on the teleop device)."""
        self._intervention_done.set()

    # ------------------------------------------------------------------ PracticeRig
    def run_attempt(self, task: str, language: str, horizon_steps: int,
                    should_abort: Callable[[], str | None]) -> AttemptRun:
        c = self.client
        home = c.call_json("sim/reset" if self.is_sim else "arm/home", timeout_s=30.0)
        if not home.get("ok", True):
            return AttemptRun(0, None, fault=f"homing the arm failed: {home}")
        set_remote_parameters(c.node, "inference", {"task_language": language, "explore": self.explore,
                                                   "gripper_hold_steps": self.gripper_hold_steps,
                                                   "episode_steps": int(horizon_steps)})
        self._start_recorder()
        with self._lock:
            start = self._executed
        version = self.policy_version()
        c.call("inference/enable", True)
        aborted = fault = None
        steps = 0
        last_progress = time.monotonic()
        try:
            while steps < horizon_steps:
                aborted = should_abort()
                if aborted:
                    break
                status = dict(c.arm_status)
                if status.get("status") in FAULT_STATES:
                    fault = f"arm {status.get('status')}: {status.get('reason', '')}"
                    break
                with self._lock:
                    now = self._executed - start
                if now != steps:
                    steps, last_progress = now, time.monotonic()
                elif time.monotonic() - last_progress > self.step_timeout_s:
                    inf = dict(c.inference_status)
                    fault = (f"no executed step for {self.step_timeout_s:.0f} s (inference: "
                             f"{inf.get('health', inf.get('state', '?'))}, last error {inf.get('last_error', '')!r})")
                    break
                time.sleep(POLL_S)
        finally:
            self.hold()
        # A command already in flight executes on the arm's next tick. Wait for it on an abort too: otherwise it lands
        # after the discard, in the next attempt's recording (seen: a 6-step episode at horizon 5 after a stop/start).
        time.sleep(self.settle_s)
        if aborted:  # discarded anyway; a dead recorder would only make the catch-up wait time out
            return AttemptRun(steps, None, aborted=aborted, policy_version=version)
        with self._lock:
            steps = self._executed - start
        if not c.wait_recorder_caught_up(steps, timeout_s=10.0):
            fault = fault or f"the recorder did not account for {steps} executed steps within 10 s"
        return AttemptRun(steps, self._final_obs(), aborted=aborted, fault=fault, policy_version=version)

    def _start_recorder(self) -> None:
        deadline = time.monotonic() + 30.0
        while not (started := self.client.call("recorder/start")).success:
            if not started.message.startswith("waiting for inputs") or time.monotonic() > deadline:
                raise RuntimeError(f"recorder refused to start: {started.message}")
            time.sleep(0.2)

    def _final_obs(self) -> dict | None:
        with self.client._lock:
            images = dict(self.client.latest_images)
            state = self.client.latest_state
        missing = [cam for cam in self.cameras if cam not in images]
        if missing:
            return None
        obs = {image_key(cam): images[cam][1] for cam in self.cameras}
        if state is not None:
            obs[STATE_KEY] = state.positions
        return obs

    def commit_attempt(self, meta) -> int | None:
        fields = {k: v for k, v in meta.to_json().items() if v is not None and k not in ("episode_id",)}
        set_remote_parameters(self.client.node, "recorder", {"episode_meta": json.dumps(fields)})
        rec = self.client.call_json("recorder/stop", bool(meta.success), timeout_s=30.0)
        if not rec.get("ok", False):
            raise RuntimeError(f"the recorder did not commit attempt {meta.attempt}: {rec}")
        return rec.get("episode")

    def discard_attempt(self) -> None:
        try:
            self.client.call("recorder/discard", timeout_s=1.0)
        except TimeoutError:
            log.warning("recorder/discard did not answer: a recorder that died took its open episode with it "
                        "(nothing of it was committed)")

    def _evaluate(self) -> dict:
        return self.client.call_json("sim/evaluate") if self.is_sim else {}

    def ground_truth(self, task: str) -> bool | None:
        if not self.is_sim:
            return None
        return bool(self._evaluate().get("task_success", {}).get(task))

    def problems(self) -> list[str]:
        return list(self._evaluate().get("irreversible", [])) if self.is_sim else []

    def reset(self, kind: str, reason: str, should_abort: Callable[[], str | None]) -> bool:
        if self.is_sim:
            return bool(self.client.call_json("sim/intervene", timeout_s=30.0).get("ok", False))
        self._intervention_done.clear()
        while not self._intervention_done.wait(0.2):
            if should_abort() == "stopped":
                return False
        return True

    def hold(self) -> None:
        try:
            self.client.call("inference/enable", False, timeout_s=3.0)
        except TimeoutError:
            # A dead inference node sends nothing: the arm node's watchdog holds the arm without it.
            log.warning("inference/enable did not answer; with no commands the arm's watchdog holds the arm")

    def policy_version(self) -> str | None:
        with self.client._lock:
            ok = [r for r in self.client.policy_active if r.get("status") == "ok"]
        if not ok:
            return None
        r = ok[-1]
        return f"{r.get('policy_type')}@v{r.get('version')}"
