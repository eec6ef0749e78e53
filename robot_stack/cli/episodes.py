"""Episode loop shared by the demo and the HIL test: reset, record, let one controller act, judge, commit.

Talks to the graph only through a RigClient-like object (services sim/reset, sim/evaluate,
teleop/enable, inference/enable, recorder/start, recorder/stop), so it contains no ROS code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
                check=None) -> EpisodeResult:
    """One episode. Ends when the task succeeds, the expert script finishes, or max_steps pass.

    After the controller is disabled, a command already in flight still executes on the arm's next tick;
    we wait until the executed-step count has been still for `settle_s` (longer than one control period)
    so the verdict and the recorded episode include it.
    """
    enable = CONTROLLERS[controller]
    t0 = time.monotonic()
    client.call("sim/reset")
    started = client.call("recorder/start")
    if not started.success:
        raise RuntimeError(f"recorder refused to start: {started.message}")
    client.call(enable, True)
    try:
        while True:
            if check is not None:
                check()
            ev = client.call_json("sim/evaluate")
            if ev["success"] or ev["steps"] >= max_steps or (controller == "expert" and ev["expert_done"]):
                break
            time.sleep(poll_s)
    finally:
        client.call(enable, False)
    ev = client.call_json("sim/evaluate")
    while True:
        time.sleep(settle_s)
        after = client.call_json("sim/evaluate")
        if after["steps"] == ev["steps"]:
            break
        ev = after
    rec = client.call_json("recorder/stop", bool(ev["success"]))
    return EpisodeResult(controller, bool(ev["success"]), int(ev["steps"]), time.monotonic() - t0,
                         rec.get("episode"), int(rec.get("dropped", 0)))
