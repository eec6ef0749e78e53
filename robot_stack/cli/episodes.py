"""Episode loop shared by the demo and the HIL test: reset, record, let one controller act, judge, commit.

Talks to the graph only through a RigClient-like object (services sim/reset, sim/evaluate,
teleop/enable, inference/enable, recorder/start, recorder/stop), so it contains no ROS code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

CONTROLLERS = {"expert": "teleop/enable", "policy": "inference/enable"}


@dataclass
class EpisodeResult:
    controller: str
    success: bool
    steps: int
    duration_s: float
    episode: int | None  # store index, None if nothing was committed
    dropped: int


def run_episode(client, controller: str, max_steps: int, poll_s: float = 0.1, settle_s: float = 0.3,
                check=None, recorder_timeout_s: float = 10.0, start_timeout_s: float = 30.0) -> EpisodeResult:
    """One episode. Ends when the task succeeds, the expert script finishes, or max_steps pass.

    After the controller is disabled, a command already in flight still executes on the arm's next tick;
    we wait until the executed-step count has been still for `settle_s` (longer than one control period)
    so the verdict and the recorded episode include it.
    """
    enable = CONTROLLERS[controller]
    t0 = time.monotonic()
    client.call("sim/reset")
    deadline = time.monotonic() + start_timeout_s
    while not (started := client.call("recorder/start")).success:
        # Right after bring-up the recorder may still be discovering its input topics; anything else is final.
        if not started.message.startswith("waiting for inputs") or time.monotonic() > deadline:
            raise RuntimeError(f"recorder refused to start: {started.message}")
        time.sleep(0.2)
    client.call(enable, True)
    try:
        while True:
            if check is not None:
                check()
            ev = client.call_json("sim/evaluate")
            if ev["success"] or ev["steps"] >= max_steps or (controller == "expert" and ev["expert_done"]):
                break
            time.sleep(poll_s)
    except BaseException as err:
        # Best effort only: once a required node died the supervisor has stopped the graph, so this call cannot be
        # answered, and its timeout must not replace the real error (a SIGKILLed recorder used to be reported as
        # "teleop/enable did not answer within 10 s; is node 'sim_rig' alive?").
        try:
            client.call(enable, False, timeout_s=2.0)
        except Exception as e:  # noqa: BLE001 - the error in flight is the one to report
            log.warning("could not disable %s after %s: %s", enable, type(err).__name__, e)
        raise
    client.call(enable, False)
    ev = client.call_json("sim/evaluate")
    while True:
        time.sleep(settle_s)
        after = client.call_json("sim/evaluate")
        if after["steps"] == ev["steps"]:
            break
        ev = after
    # The recorder may lag behind the arm (a loaded CPU, a disk flush): stop only once it has every step.
    if not client.wait_recorder_caught_up(int(ev["steps"]), timeout_s=recorder_timeout_s):
        log.warning("recorder did not account for all %d executed steps within %.0f s; stopping anyway "
                    "(the episode will be shorter than executed)", ev["steps"], recorder_timeout_s)
    rec = client.call_json("recorder/stop", bool(ev["success"]))
    return EpisodeResult(controller, bool(ev["success"]), int(ev["steps"]), time.monotonic() - t0,
                         rec.get("episode"), int(rec.get("dropped", 0)))
