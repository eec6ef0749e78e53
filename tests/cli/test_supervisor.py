"""Supervisor (robot_stack/cli/supervisor.py) with throwaway node scripts: output, failures, stopping."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from robot_stack.cli.supervisor import NodeDiedError, Supervisor, pick_domain_id, up_main
from robot_stack.conf.profiles import load_profile

# Fixture "nodes": plain Python modules run as `python -m <module> <args> --ros-args -r __ns:=...`.
NODES = {
    # Prints its environment and argv, then runs until SIGINT and exits 0 like an rclpy node.
    "talker": """
        import os, signal, sys, time
        # rclpy.init() installs its SIGINT handler even when the process starts with SIGINT ignored (a shell's
        # background job, `nohup ... &`); so does this fixture, or it would only stop on SIGTERM there.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"ready pid={os.getpid()} domain={os.environ.get('ROS_DOMAIN_ID')} "
              f"rmw={os.environ.get('RMW_IMPLEMENTATION')} argv={sys.argv[1:]}", flush=True)
        try:
            while True:
                time.sleep(0.05)
        except KeyboardInterrupt:
            print("bye", flush=True)
    """,
    # Fails after a moment with output on stdout and stderr.
    "crasher": """
        import os, sys, time
        print(f"ready pid={os.getpid()}", flush=True)
        time.sleep(0.3)
        print("something went wrong: boom", file=sys.stderr, flush=True)
        sys.exit(3)
    """,
    # The real LearnerNode under the real node main (rclpy, run_nodes), with a learner service whose thread
    # dies after a moment, as a StoreError after a compaction would kill it (review D1, test T34).
    "dying_learner": """
        import json, time
        from robot_stack.learn.background import BackgroundService
        from robot_stack.ros.learner_node import LearnerNode
        from robot_stack.ros.node_main import run_nodes

        class Dying(BackgroundService):
            def __init__(self, announce, progress):
                super().__init__()
            def run(self):
                time.sleep(0.3)
                raise RuntimeError("store table shrank from 12 to 10 episodes (compacted?)")

        def build(cfg):
            node = LearnerNode(Dying, namespace="/test")
            node.create_subscription(
                __import__("std_msgs.msg", fromlist=["String"]).String, "learner/status",
                lambda m: print("STATUS " + m.data, flush=True), 10)
            print("ready", flush=True)
            return [node]

        raise SystemExit(run_nodes(build, [], "learner"))
    """,
    # Ignores SIGINT and SIGTERM (a wedged node) and has a child of its own.
    "stubborn": """
        import os, signal, subprocess, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "60"])
        print(f"ready pid={os.getpid()} child={child.pid}", flush=True)
        while True:
            time.sleep(0.05)
    """,
}


@pytest.fixture
def node_dir(tmp_path):
    d = tmp_path / "nodes"
    d.mkdir()
    for name, body in NODES.items():
        (d / f"fx_{name}.py").write_text(textwrap.dedent(body))
    return d


def make_profile(tmp_path, node_dir, nodes: dict[str, str], optional=(), respawn=()) -> Path:
    """A profile file whose nodes run the fixture modules; `nodes` maps node name -> fixture name."""
    lines = ["description: test graph", "namespace: /test", "env:", f"  PYTHONPATH: {node_dir}",
             "  RMW_IMPLEMENTATION: rmw_fastrtps_cpp", "nodes:"]
    for name, fixture in nodes.items():
        lines += [f"  - name: {name}", f"    module: fx_{fixture}", f"    executable: {name}",
                  f"    required: {'false' if name in optional else 'true'}"]
        if name in respawn:
            lines += ["    respawn: true", "    respawn_delay_s: 0.2"]
    path = tmp_path / "test_profile.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def gone(pid: int) -> bool:
    """True once the process no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def ready_fields(lines, name):
    """`key=value` fields of node `name`'s ready line."""
    line = next(ln for ln in lines if ln.startswith(f"[{name}] ready"))
    return dict(kv.split("=", 1) for kv in line.split()[2:] if "=" in kv and not kv.startswith("argv"))


def test_output_is_prefixed_and_logged_env_and_overrides_reach_the_nodes(tmp_path, node_dir, monkeypatch):
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    lines = []
    profile = load_profile(make_profile(tmp_path, node_dir, {"a": "talker", "b": "talker"}), ["a.x=1", "y=2"])
    sup = Supervisor(profile, log=lines.append, log_dir=tmp_path / "logs", grace_s=2.0)
    with sup:
        assert os.environ["ROS_DOMAIN_ID"] == str(sup.domain_id)  # in-process clients join the same graph
        assert wait_for(lambda: sum(ln.split()[1:2] == ["ready"] for ln in lines) == 2)
        assert sup.poll() == {"a": None, "b": None} and sup.alive("a")
        sup.check()
    assert "ROS_DOMAIN_ID" not in os.environ
    assert 1 <= sup.domain_id <= 100
    a, b = ready_fields(lines, "a"), ready_fields(lines, "b")
    assert a["domain"] == b["domain"] == str(sup.domain_id) and a["rmw"] == "rmw_fastrtps_cpp"
    a_line = next(ln for ln in lines if ln.startswith("[a] ready"))
    b_line = next(ln for ln in lines if ln.startswith("[b] ready"))
    assert "'a.x=1'" in a_line and "'a.x=1'" not in b_line and "'y=2'" in b_line
    assert "'__ns:=/test'" in a_line
    # Stopped with SIGINT: clean exit, last words logged, processes gone.
    assert sup.poll() == {"a": 0, "b": 0}
    assert "[a] bye" in lines
    log_a = (tmp_path / "logs" / "a.log").read_text()
    assert "ready pid=" in log_a and "bye" in log_a and "fx_talker" in log_a
    assert gone(int(a["pid"])) and gone(int(b["pid"]))


def test_required_node_failure_raises_naming_it_and_stops_the_rest(tmp_path, node_dir):
    lines = []
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "recorder": "crasher"})
    with Supervisor(path, log=lines.append, log_dir=tmp_path / "logs", domain_id=77) as sup:
        assert wait_for(lambda: any(ln.startswith("[talker] ready") for ln in lines))
        talker_pid = sup.pid("talker")
        with pytest.raises(NodeDiedError) as e:
            sup.wait(timeout_s=10)
        assert e.value.name == "recorder" and e.value.returncode == 3
        msg = str(e.value)
        assert msg.startswith("node 'recorder' exited with code 3; last output:")
        assert "boom" in msg and str(tmp_path / "logs" / "recorder.log") in msg
        assert gone(talker_pid) and not sup.alive("talker")
        with pytest.raises(NodeDiedError, match="recorder"):  # check() keeps reporting it
            sup.check()
    assert ready_fields(lines, "talker")["domain"] == "77"


def test_optional_node_failure_is_reported_and_the_rest_keep_running(tmp_path, node_dir):
    lines = []
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "helper": "crasher"}, optional={"helper"})
    with Supervisor(path, log=lines.append, log_dir=tmp_path / "logs") as sup:
        assert sup.wait(timeout_s=1.0) is False  # no required failure, not all exited
        assert sup.alive("talker") and sup.poll()["helper"] == 3
        sup.check()
    assert any(ln.startswith("[up] node 'helper' exited with code 3") for ln in lines)


def test_stop_escalates_to_sigkill_and_kills_grandchildren(tmp_path, node_dir):
    lines = []
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "wedged": "stubborn"})
    sup = Supervisor(path, log=lines.append, log_dir=tmp_path / "logs", grace_s=0.3, term_grace_s=0.3)
    with sup:
        assert wait_for(lambda: sum(" ready " in f"{ln} " for ln in lines) == 2)
    fields = ready_fields(lines, "wedged")
    assert sup.poll() == {"talker": 0, "wedged": -signal.SIGKILL}
    assert gone(int(fields["pid"])) and wait_for(lambda: gone(int(fields["child"])), 5)


def _run_up_in_subprocess(args, tmp_path):
    code = "import sys; from robot_stack.cli.supervisor import up_main; sys.exit(up_main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=tmp_path)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    return proc, lines, reader


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_ctrl_c_or_sigterm_leaves_nothing_running(tmp_path, node_dir, sig):
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "wedged": "stubborn"})
    proc, lines, reader = _run_up_in_subprocess([str(path), "--grace-s", "0.3", "--term-grace-s", "0.3", "--log-dir", "logs"], tmp_path)
    try:
        assert wait_for(lambda: sum(" ready " in ln for ln in lines) == 2), "".join(lines)
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    out = [ln.rstrip("\n") for ln in lines]
    pids = [int(ready_fields(out, n)["pid"]) for n in ("talker", "wedged")]
    pids.append(int(ready_fields(out, "wedged")["child"]))
    assert wait_for(lambda: all(gone(p) for p in pids), 5), out
    assert any("stopping all nodes" in ln for ln in out)
    assert any(ln.startswith("[up] namespace /test, ROS_DOMAIN_ID=") for ln in out)
    assert (tmp_path / "logs" / "talker.log").is_file()


def test_up_required_failure_exits_nonzero_naming_the_node(tmp_path, node_dir, capsys):
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "recorder": "crasher"})
    assert up_main([str(path), "--log-dir", str(tmp_path / "logs")]) == 1
    out = capsys.readouterr().out
    assert "[up] FAILED: node 'recorder' exited with code 3" in out and "boom" in out
    assert "[talker] ready" in out and "[recorder] ready" in out


def test_up_unknown_profile_exits_2_listing_profiles(capsys):
    assert up_main(["no_such_profile"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'no_such_profile'" in err and "sim_demo" in err and "sim_collect" in err


def test_domain_id_choice(monkeypatch):
    assert pick_domain_id(5, {"ROS_DOMAIN_ID": "9"}) == 5
    assert pick_domain_id(None, {"ROS_DOMAIN_ID": "9"}) == 9
    assert all(1 <= pick_domain_id(None, {}) <= 100 for _ in range(5))


def test_dead_learner_is_reported_and_the_rig_keeps_running(tmp_path, node_dir):
    """T34: the learner's thread dies -> it publishes the failed status, exits non-zero; the supervisor names
    it, its exit code and the error line, and (learner not required) leaves the rig stand-in running."""
    lines = []
    path = make_profile(tmp_path, node_dir, {"rig": "talker", "learner": "dying_learner"}, optional={"learner"})
    with Supervisor(path, log=lines.append, log_dir=tmp_path / "logs", grace_s=2.0) as sup:
        assert wait_for(lambda: sup.poll()["learner"] is not None, 60), lines[-20:]
        sup.check()  # not required: no NodeDiedError, only a report
        assert sup.alive("rig")
        dead = sup.exited()["learner"]
        assert dead["code"] == 1 and "learner thread died" in dead["last_error"]
        assert "table shrank" in dead["last_error"]
    status = [ln for ln in lines if ln.startswith("[learner] STATUS ")]
    assert status and '"state": "failed"' in status[0] and "table shrank" in status[0]
    report = [ln for ln in lines if ln.startswith("[up] node 'learner' exited with code 1")]
    assert len(report) == 1 and "not required" in report[0] and "table shrank" in report[0], report


def test_dead_required_learner_stops_the_graph(tmp_path, node_dir):
    path = make_profile(tmp_path, node_dir, {"rig": "talker", "learner": "dying_learner"})
    with Supervisor(path, log=lambda _: None, log_dir=tmp_path / "logs", grace_s=2.0) as sup:
        with pytest.raises(NodeDiedError, match=r"node 'learner' exited with code 1[\s\S]*learner thread died"):
            sup.wait(timeout_s=60)
        assert not sup.alive("rig")


ORDERED_NODE = """
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as rclpy does, even when started with SIGINT ignored
    name, log = sys.argv[1], os.environ["STOP_LOG"]
    print("ready", flush=True)
    try:
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        with open(log, "a") as f:
            f.write(f"{name} {time.monotonic()}\\n")
        time.sleep(0.2)  # a node takes a moment to shut down: the next phase must wait for it
"""


def test_teardown_stops_inference_first_and_the_rig_last(tmp_path):
    """A12/T33: with the policy stopped first no action reaches the arm during shutdown (the arm's watchdog
    holds); the rig goes last, after the recorder and learner."""
    d = tmp_path / "ordered"
    d.mkdir()
    for module in ("sim_rig_node", "recorder_node", "learner_node", "inference_node"):
        (d / f"{module}.py").write_text(textwrap.dedent(ORDERED_NODE))
    stop_log = tmp_path / "stops.txt"
    lines = ["description: ordered", "namespace: /test", "env:", f"  PYTHONPATH: {d}",
             f"  STOP_LOG: {stop_log}", "nodes:"]
    for module in ("sim_rig_node", "recorder_node", "learner_node", "inference_node"):  # profile order
        name = module.removesuffix("_node")
        lines += [f"  - name: {name}", f"    module: {module}", f"    executable: {name}", f"    args: [{name}]",
                  "    required: true"]
    path = tmp_path / "ordered.yaml"
    path.write_text("\n".join(lines) + "\n")
    out = []
    with Supervisor(path, log=out.append, log_dir=tmp_path / "logs", grace_s=5.0) as sup:
        assert wait_for(lambda: sum(ln.endswith("] ready") for ln in out) == 4, 30)
    assert sup.poll() == {"sim_rig": 0, "recorder": 0, "learner": 0, "inference": 0}
    got = dict(ln.split() for ln in stop_log.read_text().splitlines())
    t = {k: float(v) for k, v in got.items()}
    assert t["inference"] + 0.15 < min(t["recorder"], t["learner"]), t  # after inference had exited
    assert max(t["recorder"], t["learner"]) + 0.15 < t["sim_rig"], t
    assert abs(t["recorder"] - t["learner"]) < 0.15, t  # one phase: signalled together, not one by one


def test_respawned_node_comes_back_after_kill_9_with_its_exit_recorded(tmp_path, node_dir):
    """`respawn: true`: a SIGKILLed required node is restarted (new pid, log appended), the exit is recorded with
    its signal for other nodes to read, and check() does not treat it as a failure."""
    import json

    lines = []
    path = make_profile(tmp_path, node_dir, {"rig": "talker", "recorder": "talker"}, respawn={"recorder"})
    with Supervisor(path, log=lines.append, log_dir=tmp_path / "logs") as sup:
        assert wait_for(lambda: sum(ln.split()[1:2] == ["ready"] for ln in lines) == 2)
        first = sup.pid("recorder")
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: sup.pid("recorder") != first and sup.alive("recorder"), 10)
        assert wait_for(lambda: sum(ln.startswith("[recorder] ready") for ln in lines) == 2)
        sup.check()  # not a failure: it is back
        assert sup.restarts("recorder") == 1 and sup.alive("rig")
    events = [json.loads(ln) for ln in (tmp_path / "logs" / "node_events.jsonl").read_text().splitlines()]
    assert [(e["node"], e.get("code"), e["action"]) for e in events] == [("recorder", -9, "respawn"),
                                                                        ("recorder", None, "started")]
    assert "SIGKILL" in events[0]["exit"]
    assert any("node 'recorder' exited with code -9 (SIGKILL)" in ln and "respawning" in ln for ln in lines)
    log = (tmp_path / "logs" / "recorder.log").read_text()
    assert log.count("ready pid=") == 2 and "# ---- respawn 1 after exit code -9 (SIGKILL)" in log


def test_a_crash_loop_is_given_up_and_reported_naming_the_node(tmp_path, node_dir, monkeypatch):
    import robot_stack.cli.supervisor as supervisor

    monkeypatch.setattr(supervisor, "RESPAWN_LIMIT", 2)
    path = make_profile(tmp_path, node_dir, {"talker": "talker", "recorder": "crasher"}, respawn={"recorder"})
    with Supervisor(path, log=lambda _: None, log_dir=tmp_path / "logs") as sup, \
            pytest.raises(NodeDiedError, match="node 'recorder' exited with code 3"):
        sup.wait(timeout_s=20)
    assert [e["action"] for e in sup.node_events] == ["respawn", "started", "respawn", "started", "gave_up"]
