"""Workspace bounds and home pose captured while an operator drives the arm (plain Python, no ROS).

    ee_pose / joint_states (each arm tick) ──► WorkspaceCapture.add_state ──► visited ee positions
    operator "home" key (with the state it answered) ──► WorkspaceCapture.mark_home ──► home joints
    finish ──► bounds = min/max of visited positions ± margin ──► arm.yaml fields + residuals/notes

The bounds become the arm node's safety box (rig_node reads workspace_min_m/max_m from arm.yaml), so a
box the operator never really spanned (one axis left flat) is refused instead of clamping every later
command onto a plane.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from robot_stack.calibration.files import CalibrationError

DEFAULT_MARGIN_M = 0.02
# Smallest extent per axis (before the margin) that counts as "the operator drove along this axis":
# 2 cm = one full teleop step at the default scale; anything less is a capture that forgot an axis.
DEFAULT_MIN_EXTENT_M = 0.02


@dataclass
class ArmSample:
    stamp_ns: int
    joints_rad: tuple[float, ...]
    ee_xyz_m: tuple[float, float, float]


@dataclass
class WorkspaceResult:
    workspace_min_m: list[float] | None
    workspace_max_m: list[float] | None
    home_joints_rad: list[float] | None
    joint_names: list[str]
    residuals: dict
    samples: list[ArmSample] = field(default_factory=list)
    home_stamp_ns: int | None = None

    def arm_yaml(self) -> dict:
        """The arm.yaml fields this capture measured (the rest of the file, e.g. the IP, is kept by save_device)."""
        out: dict = {}
        if self.workspace_min_m is not None:
            out["workspace_min_m"] = self.workspace_min_m
            out["workspace_max_m"] = self.workspace_max_m
        if self.home_joints_rad is not None:
            out["home_joints_rad"] = self.home_joints_rad
        return out


class WorkspaceCapture:
    """Accumulates arm states while a person drives; thread-safe (states arrive on the ROS thread).

    margin_m: added on every side of the visited box (the gripper fingers and a held object reach past
        the ee point the arm reports).
    min_extent_m: per-axis visited extent below which bounds() refuses the box.
    """

    def __init__(self, margin_m: float = DEFAULT_MARGIN_M, min_extent_m: float = DEFAULT_MIN_EXTENT_M):
        if margin_m < 0:
            raise ValueError(f"margin_m must be >= 0, got {margin_m}")
        self.margin_m, self.min_extent_m = float(margin_m), float(min_extent_m)
        self._lock = threading.Lock()
        self.samples: list[ArmSample] = []
        self.joint_names: list[str] = []
        self.home: ArmSample | None = None

    def add_state(self, stamp_ns: int, joint_names, joints_rad, ee_xyz_m) -> None:
        ee = tuple(float(v) for v in ee_xyz_m)[:3]
        if not np.all(np.isfinite(ee)) or not np.all(np.isfinite(joints_rad)):
            return  # a driver glitch must not stretch the safety box to infinity
        with self._lock:
            if self.samples and self.samples[-1].stamp_ns == int(stamp_ns):
                return  # the same tick seen twice (joint_states and ee_pose both trigger)
            self.joint_names = list(joint_names)
            self.samples.append(ArmSample(int(stamp_ns), tuple(float(q) for q in joints_rad), ee))

    @property
    def n_samples(self) -> int:
        with self._lock:
            return len(self.samples)

    def mark_home(self, stamp_ns: int | None = None) -> ArmSample:
        """Home = the joints of the state the key press answered (stamp_ns), else the newest state."""
        with self._lock:
            if not self.samples:
                raise CalibrationError("home key pressed before any joint_states arrived; is the arm node running?")
            pick = self.samples[-1]
            if stamp_ns is not None:
                match = [s for s in self.samples if s.stamp_ns == int(stamp_ns)]
                pick = match[-1] if match else pick
            self.home = pick
            return pick

    def bounds(self) -> tuple[list[float], list[float], dict]:
        """(workspace_min_m, workspace_max_m, residuals); CalibrationError for a degenerate box."""
        with self._lock:
            pts = np.array([s.ee_xyz_m for s in self.samples], dtype=np.float64).reshape(-1, 3)
        if len(pts) < 2:
            raise CalibrationError(f"only {len(pts)} arm states were captured: drive the arm through the "
                                   "workspace before finishing (is the teleop device live?)")
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        extent = hi - lo
        flat = [axis for axis, e in zip("xyz", extent, strict=True) if e < self.min_extent_m]
        if flat:
            raise CalibrationError(
                f"the captured workspace is degenerate: it spans only {np.round(extent * 100, 1).tolist()} cm in "
                f"x/y/z, under {self.min_extent_m * 100:.0f} cm along {flat}; drive the arm to the far corners of "
                "the workspace along every axis (or lower min_extent_m if the task really is that small)")
        residuals = {"n_states": int(len(pts)), "visited_extent_m": extent.round(4).tolist(),
                     "margin_m": self.margin_m}
        return (lo - self.margin_m).round(4).tolist(), (hi + self.margin_m).round(4).tolist(), residuals

    def result(self, want_bounds: bool = True, want_home: bool = False) -> WorkspaceResult:
        lo = hi = None
        residuals: dict = {}
        if want_bounds:
            lo, hi, residuals = self.bounds()
        if want_home and self.home is None:
            raise CalibrationError("the home key was never pressed: drive the arm to its home pose and press "
                                   "home (keyboard h, gamepad Back) or success (keyboard y)")
        home = self.home
        if home is not None:
            residuals["home_ee_xyz_m"] = [round(v, 4) for v in home.ee_xyz_m]
        with self._lock:
            samples = list(self.samples)
        return WorkspaceResult(lo, hi, list(home.joints_rad) if home else None, list(self.joint_names), residuals,
                               samples, home.stamp_ns if home else None)


FINISH_EVENTS = ("success",)
ABORT_EVENTS = ("quit", "fail", "discard")


def drive_capture(capture: WorkspaceCapture, stamped_events, what: str, check=None, status=None,
                  poll_s: float = 0.05, state_wait_s: float = 2.0, max_s: float = 900.0) -> WorkspaceResult:
    """The operator loop of `robot-stack calibrate workspace|home` over a queue of (event, state stamp ns).

    workspace: drive everywhere the task needs, press success (keyboard y) to save; home (h) also records the
        home pose on the way. home: drive to the home pose, press home (h) or success (y).
    quit / fail / discard abort: CalibrationError, nothing is written.
    """
    import queue
    import time

    status = status or (lambda line: None)
    t0 = time.monotonic()
    while True:
        if check is not None:
            check()
        if time.monotonic() - t0 > max_s:
            raise CalibrationError(f"no finish key within {max_s:.0f} s; nothing was written")
        try:
            ev, stamp_ns = stamped_events.get(timeout=poll_s)
        except queue.Empty:
            status(f"calibrate {what}: {capture.n_samples} arm states captured")
            continue
        if ev in ABORT_EVENTS:
            raise CalibrationError(f"calibrate {what} aborted by the operator ({ev}); nothing was written")
        if ev == "home" or (what == "home" and ev in FINISH_EVENTS):
            _wait_for_stamp(capture, stamp_ns, state_wait_s)
            home = capture.mark_home(stamp_ns)
            status(f"home pose recorded: {[round(q, 3) for q in home.joints_rad]} rad")
            if what == "home":
                return capture.result(want_bounds=False, want_home=True)
        elif ev in FINISH_EVENTS:
            return capture.result(want_bounds=True)


def _wait_for_stamp(capture: WorkspaceCapture, stamp_ns: int, timeout_s: float) -> None:
    # The teleop node and the state subscriber see the same joint_states message on different threads;
    # wait until the capture holds the state the key press answered so home is that state, not a neighbour.
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with capture._lock:
            if any(s.stamp_ns >= stamp_ns for s in capture.samples):
                return
        time.sleep(0.01)
