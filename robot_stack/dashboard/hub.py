"""DashboardHub: the thread-safe meeting point of the ROS bridge node and the web server (plain Python, no rclpy).

    bridge (ROS executor thread)                      web server (uvicorn's loop + its thread pool)
      put_arm_status / put_arm_state / put_estop  ─┐
      put_camera_frame (throttled, JPEG here)      ├─► one lock ─► snapshot(), camera_jpeg()
      put_practice / put_learner / put_inference   │
      put_policy_active                           ─┘
      take_commands() ◄── queue ◄── submit("estop_engage" | "estop_release" | "rollback")  (waits for the reply)
            └─ calls the ROS service, then Command.finish(ok, message)

`submit` wakes the bridge through a callable the bridge registers (an rclpy guard condition), so an e-stop
click reaches the arm node's service without waiting for a polling timer.

What the dashboard reads from `practice/status` (std_msgs/String JSON; the practice node is not built yet, so
this is the contract it should publish; unknown keys are shown as they are, missing ones as "-"):

    {"attempt": 12, "phase": "forward" | "backward", "state": "running" | "paused" | ...,
     "interventions": 3, "classifier": {"fp": 1, "fn": 0},
     "result": {"attempt": 11, "phase": "backward", "success": true}}   # the attempt that just finished

Each new `result` (by attempt number) is added to the success-over-attempts plot of its phase.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

COMMAND_KINDS = ("estop_engage", "estop_release", "rollback")
# A topic not heard from for this long is shown as stale (greyed, with its age) instead of as the current value.
STALE_AFTER_S = 3.0
_PLOT_POINTS = 300  # per series: enough for a session's trend, small enough to push 4x a second


class CommandTimeout(TimeoutError):
    """The bridge did not answer a command in time (bridge node dead, or the service owner is)."""


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    message: str


@dataclass
class Command:
    """One operator command on its way to the bridge; the bridge calls finish() exactly once."""

    kind: str
    submitted_s: float = field(default_factory=time.monotonic)
    _future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future, repr=False)

    @property
    def done(self) -> bool:
        return self._future.done()

    def finish(self, ok: bool, message: str) -> None:
        if not self._future.done():
            self._future.set_result(CommandResult(bool(ok), str(message)))


def thumbnail(image: np.ndarray, max_px: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) with max(h, w) <= max_px, by integer striding (no resampling library;
    thumbnails only have to be recognisable)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    step = max(1, math.ceil(max(image.shape[:2]) / max_px))
    return np.ascontiguousarray(image[::step, ::step])


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(image), level=quality))


class _Series:
    """A bounded (x, y) series for a plot."""

    def __init__(self, maxlen: int = _PLOT_POINTS):
        self.points: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, x: float, y: float) -> None:
        if math.isfinite(x) and math.isfinite(y):
            self.points.append((float(x), float(y)))

    def to_json(self) -> list[list[float]]:
        return [[x, y] for x, y in self.points]


class DashboardHub:
    """Latest values of everything the page shows, plus the command queue. Every method is thread-safe."""

    def __init__(self, cameras: tuple[str, ...] | list[str], thumbnail_hz: float = 4.0, thumbnail_px: int = 160,
                 clock: Callable[[], float] = time.monotonic):
        if thumbnail_hz <= 0 or thumbnail_px < 8:
            raise ValueError(f"thumbnail_hz must be > 0 and thumbnail_px >= 8, got {thumbnail_hz}, {thumbnail_px}")
        self.cameras = tuple(cameras)
        self.thumbnail_period_s = 1.0 / float(thumbnail_hz)
        self.thumbnail_px = int(thumbnail_px)
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._seq = 0  # bumped on every update: the WebSocket pushes only when it moved
        self._heard: dict[str, float] = {}  # topic -> monotonic time of its last message
        self._arm_status: dict = {}
        self._arm_state: dict = {}
        self._estop: bool | None = None
        self._practice: dict = {}
        self._practice_results: dict[str, _Series] = {"forward": _Series(), "backward": _Series()}
        self._practice_seen: set[int] = set()
        self._learner: dict = {}
        self._losses: dict[str, _Series] = {}
        self._inference: dict = {}
        self._policy_reports: list[dict] = []
        self._frames: dict[str, tuple[int, int, bytes]] = {}  # camera -> (frame seq, capture stamp ns, jpeg)
        self._frame_due_s: dict[str, float] = {}
        self._commands: deque[Command] = deque()
        self._waker: Callable[[], None] | None = None
        self.bridge_alive_s: float | None = None

    # ------------------------------------------------------------------ bridge side
    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """`waker()` is called (from any thread) when a command is queued; the bridge then take_commands()."""
        with self._lock:
            self._waker = waker

    def _touch(self, topic: str) -> None:  # lock held
        self._heard[topic] = self._clock()
        self._seq += 1
        self._changed.notify_all()

    def camera_due(self, camera: str) -> bool:
        """True when `camera` should get a new thumbnail; lets the bridge skip converting frames it would drop."""
        with self._lock:
            return self._clock() >= self._frame_due_s.get(camera, 0.0)

    def put_camera_frame(self, camera: str, image: np.ndarray, stamp_ns: int) -> bool:
        """Store a JPEG thumbnail of `image` (uint8 (H, W, 3)) if one is due; returns whether it was taken."""
        if camera not in self.cameras:
            raise KeyError(f"camera {camera!r} is not one of the dashboard's cameras {list(self.cameras)}")
        if not self.camera_due(camera):
            return False
        jpeg = encode_jpeg(thumbnail(image, self.thumbnail_px))  # outside the lock: a few ms
        with self._lock:
            seq = self._frames.get(camera, (0, 0, b""))[0] + 1
            self._frames[camera] = (seq, int(stamp_ns), jpeg)
            self._frame_due_s[camera] = self._clock() + self.thumbnail_period_s
            self._touch(f"camera/{camera}")
        return True

    def put_arm_status(self, status: dict) -> None:
        with self._lock:
            self._arm_status = dict(status)
            self._touch("arm/status")

    def put_arm_state(self, joint_names, joint_positions, ee_pose, stamp_ns: int) -> None:
        """Joint names/positions (rad, gripper opening included) and ee pose xyz (m) + quat xyzw."""
        with self._lock:
            # strict=False: a malformed joint_states is shown truncated, it must not raise on the ROS thread.
            joints = zip(joint_names, joint_positions, strict=False)
            self._arm_state = {"joints": {str(n): round(float(p), 4) for n, p in joints},
                               "ee_xyz_m": [round(float(v), 4) for v in ee_pose[:3]],
                               "ee_quat_xyzw": [round(float(v), 4) for v in ee_pose[3:7]], "stamp_ns": int(stamp_ns)}
            self._touch("arm/state")

    def put_estop(self, engaged: bool) -> None:
        with self._lock:
            self._estop = bool(engaged)
            self._touch("estop")

    def put_practice(self, status: dict) -> None:
        with self._lock:
            self._practice = dict(status)
            result = status.get("result")
            if isinstance(result, dict) and result.get("phase") in self._practice_results:
                try:
                    attempt = int(result["attempt"])
                except (KeyError, TypeError, ValueError):
                    attempt = None
                if attempt is not None and attempt not in self._practice_seen and result.get("success") is not None:
                    self._practice_seen.add(attempt)
                    self._practice_results[result["phase"]].add(attempt, 1.0 if result["success"] else 0.0)
            self._touch("practice/status")

    def put_learner(self, status: dict) -> None:
        with self._lock:
            self._learner = dict(status)
            step = status.get("step")
            if isinstance(step, (int, float)):
                for k, v in status.items():
                    if "loss" in k and isinstance(v, (int, float)):
                        self._losses.setdefault(k, _Series()).add(step, v)
            self._touch("learner/status")

    def put_inference(self, status: dict) -> None:
        with self._lock:
            self._inference = dict(status)
            self._touch("inference/status")

    def put_policy_active(self, report: dict) -> None:
        with self._lock:
            self._policy_reports.append(dict(report))
            del self._policy_reports[:-50]  # the page shows recent history; the log keeps everything
            self._touch("policy_active")

    def take_commands(self) -> list[Command]:
        with self._lock:
            cmds = list(self._commands)
            self._commands.clear()
            self.bridge_alive_s = self._clock()
        return cmds

    def mark_bridge_alive(self) -> None:
        with self._lock:
            self.bridge_alive_s = self._clock()

    # ------------------------------------------------------------------ web side
    def submit(self, kind: str, timeout_s: float = 5.0) -> CommandResult:
        """Queue a command for the bridge and wait for its reply (call from a worker thread, not the event loop).

        Raises ValueError for an unknown kind and CommandTimeout if the bridge does not answer in time."""
        if kind not in COMMAND_KINDS:
            raise ValueError(f"unknown command {kind!r}; known: {list(COMMAND_KINDS)}")
        cmd = Command(kind)
        with self._lock:
            self._commands.append(cmd)
            waker = self._waker
        if waker is not None:
            waker()
        try:
            return cmd._future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            with self._lock:
                if cmd in self._commands:
                    self._commands.remove(cmd)  # never run a stale command after the operator was told it failed
            raise CommandTimeout(f"{kind}: no answer from the dashboard's ROS bridge within {timeout_s:.0f} s; "
                                 "is the dashboard node spinning and the arm/inference node up? Use the "
                                 "hardware e-stop if the arm must stop now") from None

    @property
    def seq(self) -> int:
        with self._lock:
            return self._seq

    def wait_change(self, seq: int, timeout_s: float) -> int:
        """Block until the update counter moves past `seq` (or timeout); returns the new counter."""
        with self._changed:
            self._changed.wait_for(lambda: self._seq != seq, timeout=timeout_s)
            return self._seq

    def camera_jpeg(self, camera: str) -> tuple[int, int, bytes] | None:
        """(frame seq, capture stamp ns, JPEG bytes) of the newest thumbnail, None before the first frame."""
        if camera not in self.cameras:
            raise KeyError(f"unknown camera {camera!r}; cameras: {list(self.cameras)}")
        with self._lock:
            return self._frames.get(camera)

    def snapshot(self) -> dict:
        """Everything the page shows, JSON-serialisable, with each topic's age so stale values are visible."""
        with self._lock:
            now = self._clock()
            ages = {t: round(now - s, 2) for t, s in self._heard.items()}
            active = next((r for r in reversed(self._policy_reports) if r.get("status") == "ok"), None)
            return {
                "seq": self._seq,
                "ages_s": ages,
                "stale_after_s": STALE_AFTER_S,
                "bridge_age_s": None if self.bridge_alive_s is None else round(now - self.bridge_alive_s, 2),
                "arm": {"status": dict(self._arm_status), "state": dict(self._arm_state), "estop": self._estop},
                "cameras": {c: {"seq": f[0], "stamp_ns": f[1]} if (f := self._frames.get(c)) else None
                            for c in self.cameras},
                "practice": {"status": dict(self._practice),
                             "success": {p: s.to_json() for p, s in self._practice_results.items()}},
                "learner": {"status": dict(self._learner), "losses": {k: s.to_json() for k, s in self._losses.items()}},
                "inference": dict(self._inference),
                "policy": {"active": active, "reports": list(self._policy_reports[-10:])},
            }
