"""`robot-stack collect`: teleoperated data collection on a rig, one command.

    robot-stack collect rig=widowx task="put the cube in the bowl" episodes=50 [device=keyboard] [overrides]
    robot-stack collect rig=sim_widowx episodes=5 device=replay teleop.path=demo.jsonl

Starts the rig's collect profile (rig + recorder, same graph as `ros2 launch ... collect.launch.py`), runs the
teleop device in this process, and drives the episode loop (robot_stack.teleop.session): start / success /
fail / discard keys, reset between episodes (sim: automatic; real rigs: a prompt), a live status line, and
resume: episodes of this task already in the store count toward `episodes`. `policy=1` = intervention mode
(needs a deploy profile: the policy drives, the intervene key hands over and back).
"""

from __future__ import annotations

import sys
from pathlib import Path

from robot_stack.conf.profiles import ProfileError, launch_profile_name, load_profile

OWN_KEYS = ("rig", "task", "episodes", "device", "policy", "max_episode_s")


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    """Split our keys from hydra overrides; task= is a task config name or a language instruction."""
    own, rest = {}, []
    for a in argv:
        key, eq, value = a.partition("=")
        if eq and key in OWN_KEYS:
            own[key] = value
        elif eq or a.startswith("~"):
            rest.append(a)
        else:
            raise ProfileError(f"argument {a!r} is not key=value; usage: robot-stack collect rig=... task=... episodes=N")
    own.setdefault("rig", "sim_widowx")
    own.setdefault("device", "keyboard")
    own["episodes"] = int(own.get("episodes", 10))
    task = own.get("task")
    if task:
        from importlib import resources

        known = {p.name[:-5] for p in (resources.files("robot_stack.conf") / "task").iterdir() if p.name.endswith(".yaml")}
        rest.append(f"task={task}" if task in known else f"task.language={task}")
    return own, rest


def run_collect(own: dict, overrides: list[str], log_dir: Path | None = None, status=None, node_timeout_s: float = 90):
    """Start the graph, run the session, stop the graph. Returns the SessionReport."""
    from robot_stack.cli.supervisor import Supervisor
    from robot_stack.conf import load_config
    from robot_stack.teleop.factory import make_teleop
    from robot_stack.teleop.session import CollectSession, TeleopLink, count_committed

    policy_mode = own.get("policy", "0") not in ("0", "", "false")
    rig_name = own["rig"]
    overrides = [f"rig={rig_name}", *overrides]
    cfg = load_config([o for o in overrides if not o.startswith("teleop.")])
    profile = load_profile(launch_profile_name("deploy" if policy_mode else "collect", rig_name),
                           [o for o in overrides if not o.startswith("teleop.")])
    tcfg = {"max_step_m": 0.02, "max_step_rad": 0.1, "path": ""}
    for o in overrides:
        if o.startswith("teleop."):
            k, _, v = o[len("teleop."):].partition("=")
            tcfg[k] = v
    device = make_teleop(own["device"], float(tcfg["max_step_m"]), float(tcfg["max_step_rad"]), str(tcfg["path"]))
    already = count_committed(str(cfg.store), str(cfg.task.language))
    status = status or _status_line
    if already >= own["episodes"]:
        from robot_stack.teleop.session import SessionReport

        status(f"{already}/{own['episodes']} episodes of this task are already in {cfg.store}; nothing to do")
        return SessionReport()
    # Node output goes to <log_dir>/<node>.log; the terminal keeps the operator's status line.
    with Supervisor(profile, log_dir=log_dir, log=lambda line: None) as sup:
        from robot_stack.ros.rig_client import RigClient
        from robot_stack.ros.teleop_node import TeleopThread
        from robot_stack.types import ACTION_SPACES

        client = RigClient(str(cfg.rig.namespace), name="collect")
        sim = str(cfg.rig.driver) == "sim"
        services = ["recorder/start", "recorder/stop", "recorder/discard"] + (["sim/reset"] if sim else [])
        client.wait_ready(services + (["inference/enable"] if policy_mode else []), node_timeout_s, check=sup.check)
        if policy_mode:
            # The device goes live only once a policy can act: episode keys pressed while the checkpoint still
            # loads would otherwise start an episode nobody but the person can drive.
            status("waiting for the inference node to load a policy (inference.policy=... or policy_update)")
            _wait_policy_active(client, node_timeout_s, sup.check)
        device.connect()
        link = TeleopLink()
        teleop = TeleopThread(device, ACTION_SPACES[str(cfg.rig.action_space)], str(cfg.rig.namespace), link)
        try:
            reset = (lambda: client.call("sim/reset")) if sim else None
            session = CollectSession(client, link, own["episodes"], already, reset=reset, status=status,
                                     max_episode_s=float(own.get("max_episode_s", cfg.task.max_steps / cfg.rig.control_hz * 2)),
                                     policy_mode=policy_mode, check=sup.check)
            return session.run()
        finally:
            teleop.close()
            client.close()


def _wait_policy_active(client, timeout_s: float, check) -> None:
    import time

    from robot_stack.ros.rig_client import RigTimeout

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        if client.inference_status.get("active_version") is not None:
            return
        time.sleep(0.1)
    raise RigTimeout(f"no policy became active within {timeout_s:.0f} s; pass inference.policy=<checkpoint dir> "
                     "or start a learner, and check the inference node's log")


def _status_line(line: str) -> None:
    sys.stdout.write("\r\033[K" + line)
    sys.stdout.flush()
    if "committed" in line or "discarded" in line or "press start" in line:
        sys.stdout.write("\n")


def main(argv: list[str]) -> int:
    own, overrides = parse_args(argv)
    report = run_collect(own, overrides)
    print(f"\ncollected {len(report.committed)} episodes ({report.successes} successes), "
          f"{report.discarded} discarded{'; stopped early' if report.quit_early else ''}")
    return 0
