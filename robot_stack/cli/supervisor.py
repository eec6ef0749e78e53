"""`robot-stack up <profile>`: start a profile's nodes as processes, stream their output, stop them all.

The pip-installed stand-in for `ros2 launch` (CI, `make demo`, machines without a ROS install); it reads
the same profile the launch files read (robot_stack/conf/profiles.py), and takes the same `policy:=`.

    Supervisor.start()
      ├─ per node: Popen(python -m <module> <args> --ros-args -r __ns:=<ns>), own session/process group,
      │            env = os.environ + profile env + ROS_DOMAIN_ID
      └─ per node: reader thread ── "[name] line" ──► log callable (stdout)  and  <log_dir>/<name>.log
    wait()/check(): a required node exiting non-zero ─► stop() the rest ─► NodeDiedError(name, code, last lines)
    stop(): in phases: inference/teleop, then recorder/learner/..., then the rig (stop_phase); per phase
            SIGINT its process groups ─(grace_s)─► SIGTERM ─(term_grace_s)─► SIGKILL: nothing is left running

From Python (the demo, the HIL tests):

    with Supervisor(load_profile("sim_demo", overrides), log_dir=run_dir / "logs") as sup:
        ...  # rclpy clients created here join the same ROS_DOMAIN_ID and DDS settings
        sup.check()  # raises NodeDiedError if a required node failed
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from robot_stack.conf.profiles import (
    Profile,
    ProfileError,
    available_profiles,
    load_profile,
    node_command,
    ros_env,
    with_policy,
)

LAST_LINES = 15  # lines of a failed node's output quoted in the error
RESPAWN_LIMIT, RESPAWN_WINDOW_S = 5, 60.0  # more restarts than this within the window: a crash loop, give up
NODE_EVENTS_FILE, NODE_EVENTS_ENV = "node_events.jsonl", "ROBOT_STACK_NODE_EVENTS"
_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


class NodeDiedError(RuntimeError):
    """A required node exited on its own with a non-zero code; the message names it and quotes its log."""

    def __init__(self, name: str, returncode: int, last_lines: list[str], log_path: Path | None):
        self.name, self.returncode, self.last_lines, self.log_path = name, returncode, last_lines, log_path
        super().__init__(f"node '{name}' exited with {_describe(returncode)}; last output:\n"
                         + ("\n".join(f"    {ln}" for ln in last_lines) or "    (no output)")
                         + (f"\nsee {log_path}" if log_path else ""))


def _describe(returncode: int) -> str:
    if returncode >= 0:
        return f"code {returncode}"
    try:
        return f"code {returncode} ({signal.Signals(-returncode).name})"
    except ValueError:
        return f"code {returncode}"


_ERROR_WORDS = ("error", "exception", "died", "failed", "fatal", "traceback")


def _last_error_line(tail) -> str:
    """The last line of a node's output that looks like the error, else its last non-empty line."""
    lines = [ln.strip() for ln in tail if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln.lower() for w in _ERROR_WORDS) and not ln.lower().startswith("traceback"):
            return ln
    return lines[-1] if lines else ""


def _domain_port_free(domain_id: int) -> bool:
    # RTPS well-known ports: the first participant of domain d binds unicast metatraffic port
    # 7400 + 250*d + 10 exclusively; if we can bind it, nobody on this machine is on domain d yet.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", 7400 + 250 * domain_id + 10))
        except OSError:
            return False
    return True


def pick_domain_id(given: int | None = None, env: Mapping[str, str] | None = None) -> int:
    """The given id, else $ROS_DOMAIN_ID, else a random unused-looking one in 1..100.

    Random so that parallel test runs and demos on one machine do not talk to each other.
    """
    if given is not None:
        return int(given)
    env = os.environ if env is None else env
    if env.get("ROS_DOMAIN_ID", "").strip():
        return int(env["ROS_DOMAIN_ID"])
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    candidate = rng.randint(1, 100)
    for _ in range(20):
        if _domain_port_free(candidate):
            return candidate
        candidate = rng.randint(1, 100)
    return candidate


# Teardown order (review A12): first the nodes that command the arm, so no action arrives once shutdown
# starts and the arm node's watchdog holds the arm; the rig, which owns the arm, last, after everything that
# records or learns from it has exited. Matched on the module's last component, so a copy of a node under
# another package (tests, site packages) stops in the same phase.
_STOP_FIRST = ("inference_node", "teleop_node", "practice_node")
_STOP_LAST = ("rig_node", "sim_rig_node", "arm_node", "camera_node")


def stop_phase(module: str) -> int:
    """0: stopped first (commands the arm), 1: the rest, 2: stopped last (the rig)."""
    last = module.rsplit(".", 1)[-1]
    return 0 if last in _STOP_FIRST else 2 if last in _STOP_LAST else 1


class _Proc:
    """One running node: its process, log file and the last lines it printed."""

    def __init__(self, spec, popen: subprocess.Popen, log_path: Path, log_file):
        self.spec, self.popen, self.log_path, self.log_file = spec, popen, log_path, log_file
        self.tail: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        self.reader: threading.Thread | None = None
        self.restarts = 0        # how many times this node was respawned before this process
        self.exit_seen = False   # the respawn watcher handled this process's exit
        self.given_up = False    # crash loop: not respawned again
        self.stopping = False  # set once we signalled it: its exit is then not a failure
        self.reported = False  # its exit was told to the operator


class Supervisor:
    """Runs a profile's nodes as child processes. Context manager: leaving the block stops everything.

    profile: a Profile or a profile name / path (loaded with load_profile).
    log: called with every output line, already prefixed with `[name]` (default: print to stdout,
        coloured on a TTY).
    log_dir: where `<name>.log` files go (default data/logs/<time>-<profile>).
    domain_id: ROS_DOMAIN_ID for all nodes (default: $ROS_DOMAIN_ID, else random in 1..100).
    export_env: also set ROS_DOMAIN_ID and the profile env in this process while running, so an rclpy
        client created inside the `with` block joins the same graph; restored by stop().
    """

    def __init__(self, profile: Profile | str | os.PathLike, log: Callable[[str], None] | None = None,
                 domain_id: int | None = None, log_dir: str | os.PathLike | None = None, grace_s: float = 5.0,
                 term_grace_s: float = 3.0, python: str = sys.executable, color: bool | None = None,
                 export_env: bool = True):
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.domain_id = pick_domain_id(domain_id, {**os.environ, **self.profile.env})
        self.log_dir = Path(log_dir) if log_dir is not None else (
            Path("data") / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.profile.name}")
        self.grace_s, self.term_grace_s, self.python, self.export_env = grace_s, term_grace_s, python, export_env
        self._user_log = log
        self._color = (log is None and sys.stdout.isatty()) if color is None else color
        self._out_lock = threading.Lock()
        self._procs: dict[str, _Proc] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._restart_times: dict[str, list[float]] = {}
        self.node_events: list[dict] = []  # every exit the respawn watcher handled (also in node_events.jsonl)
        self._saved_env: dict[str, str | None] | None = None
        self.env = ros_env(self.profile)
        self.env["ROS_DOMAIN_ID"] = str(self.domain_id)
        self.env["PYTHONUNBUFFERED"] = "1"  # lines must reach the reader threads as they are printed

    # -- output ---------------------------------------------------------------------------------------

    def _emit(self, name: str, line: str) -> None:
        prefix = f"[{name}]"
        if self._color:
            idx = self.profile.node_names.index(name) if name in self.profile.node_names else -1
            prefix = f"\033[{_COLORS[idx % len(_COLORS)]}m{prefix}\033[0m"
        text = f"{prefix} {line}"
        with self._out_lock:
            if self._user_log is not None:
                self._user_log(text)
            else:
                print(text, flush=True)

    def _read(self, proc: _Proc) -> None:
        # One thread per node: a pipe nobody reads fills up (64 KiB) and blocks the node's prints.
        stream = proc.popen.stdout
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            proc.tail.append(line)
            try:
                proc.log_file.write(line + "\n")
                proc.log_file.flush()
            except ValueError:  # log file closed by stop() after a straggling grandchild kept the pipe open
                pass
            self._emit(proc.spec.name, line)
        stream.close()

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Supervisor:
        if self._procs:
            raise RuntimeError("Supervisor.start() called twice")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.export_env:
            changes = {**self.profile.env, "ROS_DOMAIN_ID": str(self.domain_id)}
            self._saved_env = {k: os.environ.get(k) for k in changes}
            os.environ.update(changes)
        self.env[NODE_EVENTS_ENV] = str((self.log_dir / NODE_EVENTS_FILE).resolve())
        try:
            for spec in self.profile.nodes:
                self._procs[spec.name] = self._spawn(spec)
        except BaseException:
            self.stop()
            raise
        if any(spec.respawn for spec in self.profile.nodes):
            self._monitor = threading.Thread(target=self._watch_respawns, name="respawn", daemon=True)
            self._monitor.start()
        return self

    def _spawn(self, spec, restart: int = 0, after: str = "") -> _Proc:
        log_path = self.log_dir / f"{spec.name}.log"
        # A respawned node appends to its log: the operator reads one file per node, the crash above the restart.
        log_file = open(log_path, "a" if restart else "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        cmd = node_command(spec, self.python, self.profile.namespace, env=self.env)
        if restart:
            log_file.write(f"# ---- respawn {restart} after {after}\n")
        log_file.write(f"# {' '.join(cmd)}\n# ROS_DOMAIN_ID={self.domain_id}\n")
        log_file.flush()
        # Own session = own process group: a terminal Ctrl-C reaches only us, and stop() can
        # signal a node together with anything it spawned.
        popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        proc = _Proc(spec, popen, log_path, log_file)
        proc.restarts = restart
        proc.reader = threading.Thread(target=self._read, args=(proc,), name=f"log-{spec.name}", daemon=True)
        proc.reader.start()
        return proc

    # -- respawn --------------------------------------------------------------------------------------

    def _watch_respawns(self) -> None:
        """Restart `respawn: true` nodes that exit on their own (after their delay), like ros2 launch; give up
        after RESPAWN_LIMIT restarts within RESPAWN_WINDOW_S (a crash loop), which check() then reports."""
        while not self._stopping.is_set():
            for name, p in list(self._procs.items()):
                rc = p.popen.poll()
                if rc is None or p.stopping or not p.spec.respawn or p.given_up or p.exit_seen:
                    continue
                p.exit_seen = True
                if p.reader is not None:
                    p.reader.join(timeout=1.0)
                now = time.monotonic()
                history = [t for t in self._restart_times.get(name, []) if now - t < RESPAWN_WINDOW_S]
                event = {"node": name, "code": rc, "exit": _describe(rc), "time_ns": time.time_ns(),
                         "restarts": p.restarts, "last_error": _last_error_line(p.tail), "log": str(p.log_path)}
                if len(history) >= RESPAWN_LIMIT:
                    p.given_up = True
                    self._record_event({**event, "action": "gave_up"})
                    self._emit("up", f"node '{name}' exited with {_describe(rc)} after {len(history)} restarts in "
                                     f"{RESPAWN_WINDOW_S:.0f} s: not restarting it again; log {p.log_path}")
                    continue
                self._record_event({**event, "action": "respawn", "delay_s": p.spec.respawn_delay_s})
                self._emit("up", f"node '{name}' exited with {_describe(rc)} ({event['last_error'] or 'no output'}); "
                                 f"respawning in {p.spec.respawn_delay_s:g} s (restart {p.restarts + 1}); "
                                 f"log {p.log_path}")
                if self._stopping.wait(p.spec.respawn_delay_s):
                    return
                history.append(time.monotonic())
                self._restart_times[name] = history
                p.log_file.close()
                self._procs[name] = new = self._spawn(p.spec, p.restarts + 1, f"exit {_describe(rc)}")
                self._record_event({"node": name, "action": "started", "pid": new.popen.pid,
                                    "restarts": new.restarts, "time_ns": time.time_ns()})
            self._stopping.wait(0.05)

    def _record_event(self, event: dict) -> None:
        """One JSON line per node exit in <log_dir>/node_events.jsonl; nodes find the file through
        $ROBOT_STACK_NODE_EVENTS (the practice node names a dead node's exit code from it)."""
        import json

        with self._out_lock:
            self.node_events.append(event)
            with open(self.log_dir / NODE_EVENTS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    def restarts(self, name: str) -> int:
        return self._procs[name].restarts

    def poll(self) -> dict[str, int | None]:
        """Exit code of every node, None while it runs."""
        return {name: p.popen.poll() for name, p in self._procs.items()}

    def alive(self, name: str) -> bool:
        return self._procs[name].popen.poll() is None

    def pid(self, name: str) -> int:
        return self._procs[name].popen.pid

    def log_path(self, name: str) -> Path:
        return self._procs[name].log_path

    def _failure(self) -> NodeDiedError | None:
        for name, p in self._procs.items():
            rc = p.popen.poll()
            if p.spec.respawn and not p.given_up:
                continue  # being restarted (or about to be); only a crash loop is a failure
            if rc is not None and rc != 0 and p.spec.required and not p.stopping:
                if p.reader is not None:
                    p.reader.join(timeout=1.0)  # let the last lines (the traceback) reach the tail
                return NodeDiedError(name, rc, list(p.tail), p.log_path)
        return None

    def check(self) -> None:
        """Raise NodeDiedError (after stopping the other nodes) if a required node failed; report (once) any
        other node that exited, e.g. a learner marked `required: false` whose thread died."""
        err = self._failure()
        if err is not None:
            self.stop()
            raise err
        self._report_exits()

    def exited(self) -> dict[str, dict]:
        """Nodes that exited on their own (not stopped by us): {name: {"code", "last_error", "log"}}."""
        out = {}
        for name, p in self._procs.items():
            rc = p.popen.poll()
            if rc is not None and not p.stopping:
                out[name] = {"code": rc, "last_error": _last_error_line(p.tail) if rc else "",
                             "log": str(p.log_path)}
        return out

    def wait(self, timeout_s: float | None = None, poll_interval_s: float = 0.1) -> bool:
        """Block until every node has exited (True) or `timeout_s` passed (False).

        Raises NodeDiedError as soon as a required node fails (the others are stopped first).
        A node exiting 0 has finished its work (e.g. a learner that reached its last version); that
        is not a failure. KeyboardInterrupt propagates to the caller, which stops (see up_main).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.check()
            self._report_exits()
            if all(rc is not None for rc in self.poll().values()):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll_interval_s)

    def _report_exits(self) -> None:
        # Failures of required nodes raise in check(); everything else is worth one line to the operator.
        for name, p in self._procs.items():
            rc = p.popen.poll()
            if p.spec.respawn:
                continue  # the respawn watcher reports these
            if rc is not None and not p.reported and not p.stopping:
                p.reported = True
                if rc == 0:
                    self._emit("up", f"node '{name}' finished; log {p.log_path}")
                    continue
                if p.reader is not None:
                    p.reader.join(timeout=1.0)  # its last lines (the error) reach the tail first
                self._emit("up", f"node '{name}' exited with {_describe(rc)} (not required; the rest keep "
                                 f"running): {_last_error_line(p.tail) or '(no output)'}; log {p.log_path}")

    def _signal_group(self, p: _Proc, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the whole group already exited
            os.killpg(p.popen.pid, sig)

    def _wait_exit(self, procs: list[_Proc], timeout_s: float) -> list[_Proc]:
        deadline = time.monotonic() + timeout_s
        left = [p for p in procs if p.popen.poll() is None]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if p.popen.poll() is None]
        return left

    def stop(self) -> dict[str, int | None]:
        """Stop every node, in teardown order (see `stop_phase`): per phase SIGINT, then SIGTERM after grace_s,
        then SIGKILL. Idempotent. Returns exit codes."""
        self._stopping.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=5.0)  # no respawn races the teardown
        procs = list(self._procs.values())
        for p in procs:
            p.stopping = p.stopping or p.popen.poll() is None  # nodes that already exited keep their status
        for phase in sorted({stop_phase(p.spec.module) for p in procs}):
            self._stop_group([p for p in procs if stop_phase(p.spec.module) == phase])
        for p in procs:
            # Anything the node spawned that outlived it is still in its process group.
            self._signal_group(p, signal.SIGKILL)
            if p.reader is not None:
                p.reader.join(timeout=1.0)
            if not p.log_file.closed:
                p.log_file.close()
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None
        return self.poll()

    def _stop_group(self, procs: list[_Proc]) -> None:
        left = [p for p in procs if p.popen.poll() is None]
        # SIGINT first: rclpy nodes shut down cleanly (the recorder discards an unfinished episode).
        for p in left:
            self._signal_group(p, signal.SIGINT)
        left = self._wait_exit(left, self.grace_s)
        for p in left:
            self._signal_group(p, signal.SIGTERM)
        left = self._wait_exit(left, self.term_grace_s)
        for p in left:
            self._signal_group(p, signal.SIGKILL)
        self._wait_exit(left, 5.0)

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- CLI ------------------------------------------------------------------------------------------------

def _say(msg: str) -> None:
    print(f"[up] {msg}", flush=True)


class _Terminated(Exception):
    pass


def up_main(argv: list[str]) -> int:
    """`robot-stack up <profile> [overrides]`; returns the process exit code (2: bad profile/usage)."""
    parser = argparse.ArgumentParser(
        prog="robot-stack up",
        description="Start a profile's nodes (the same graph as `ros2 launch`); Ctrl-C stops them all.",
        epilog="Overrides: hydra key=value for every node, or <node>.key=value for one node "
               "(e.g. task=take_cube_out_of_bowl recorder.flush_every=8). policy:=<name> deploys a policy "
               "manifest of policies/ (or a checkpoint directory) on a deploy profile, as the launch files' "
               f"policy:= does (e.g. robot-stack up sim_deploy policy:=cube_in_bowl_bc). "
               f"Profiles: {', '.join(available_profiles())}.")
    parser.add_argument("profile", help="profile name or path to a profile YAML file")
    parser.add_argument("overrides", nargs="*", help="hydra overrides")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: env, else random)")
    parser.add_argument("--log-dir", default=None, help="per-node log files (default data/logs/<time>-<profile>)")
    parser.add_argument("--grace-s", type=float, default=5.0, help="seconds between SIGINT and SIGTERM on stop")
    parser.add_argument("--term-grace-s", type=float, default=3.0, help="seconds between SIGTERM and SIGKILL")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    from robot_stack.policies.catalog import PolicyManifestError, split_policy_args

    try:
        policy, overrides = split_policy_args(args.overrides)
        profile = load_profile(args.profile, overrides)
        if policy is not None:
            profile = with_policy(profile, policy)
    except (ProfileError, PolicyManifestError) as e:
        print(f"[up] {e}", file=sys.stderr, flush=True)
        return 2

    def on_sigterm(signum, frame):
        raise _Terminated()

    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C / `kill -INT` stops the graph even when `up` was started as a shell's background job, which starts
    # with SIGINT ignored (`nohup robot-stack up ... &`); rclpy nodes handle it the same way.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    sup = Supervisor(profile, domain_id=args.domain_id, log_dir=args.log_dir, grace_s=args.grace_s,
                     term_grace_s=args.term_grace_s, export_env=False)
    try:
        _say(f"profile {profile.name}: {profile.description}")
        _say(f"namespace {profile.namespace}, ROS_DOMAIN_ID={sup.domain_id}, logs in {sup.log_dir}")
        _say("starting " + ", ".join(profile.node_names) + " (Ctrl-C stops all)")
        sup.start()
        sup.wait()
        _say("all nodes exited")
        return 0
    except NodeDiedError as e:
        _say(f"FAILED: {e}")
        _say("stopped the other nodes")
        return 1
    except (KeyboardInterrupt, _Terminated) as e:
        _say(f"{'SIGTERM' if isinstance(e, _Terminated) else 'Ctrl-C'}: stopping all nodes "
             f"(SIGINT, SIGTERM after {sup.grace_s:g} s, then SIGKILL)")
        return 0
    finally:
        try:
            codes = sup.stop()
        except (KeyboardInterrupt, _Terminated):
            # A second Ctrl-C while stopping: skip the grace period.
            sup.grace_s = sup.term_grace_s = 0.0
            codes = sup.stop()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if codes:
            _say("exit codes: " + ", ".join(f"{n}={c}" for n, c in codes.items()))


run_up = up_main
