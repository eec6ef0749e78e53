"""Choosing calibration views from a live stream (plain Python, no ROS): the CLI feeds every camera frame
(and, for hand-eye, the arm pose at that frame) and these keep only views that add information.

    camera frame ──► IntrinsicsViews.offer ──► board found and different enough from every kept view? ──► keep
    (frame, T_base_gripper while the arm is still) ──► HandEyeViews.offer ──► board pose + arm pose, kept if the
                                                           arm moved/rotated enough since every kept sample
    finish() ──► charuco.calibrate_intrinsics / handeye.calibrate ──► calibration/<rig>/<camera>.yaml fields

Why filter: a person moving a board past a 15 Hz camera produces hundreds of near-identical frames; the
solvers need varied views (tilts, image corners), not many of the same one.
"""

from __future__ import annotations

import numpy as np

from robot_stack.arms.poses import rotation_angle_rad
from robot_stack.calibration import charuco, handeye
from robot_stack.calibration.files import CalibrationError


def _corner_map(found) -> dict[tuple, np.ndarray]:
    obj, img = found
    return {tuple(np.round(o, 5)): p for o, p in zip(obj, img, strict=True)}


class IntrinsicsViews:
    """Keeps up to n_views board views whose shared corners moved > min_move_px (mean) from every kept view."""

    def __init__(self, spec: charuco.BoardSpec, n_views: int = 15, min_move_px: float = 20.0):
        if n_views < 4:
            raise ValueError(f"intrinsics need >= 4 views, got views={n_views}")
        self.spec, self.n_views, self.min_move_px = spec, int(n_views), float(min_move_px)
        self.images: list[np.ndarray] = []
        self._corners: list[dict] = []
        self.n_offered = self.n_without_board = 0

    @property
    def done(self) -> bool:
        return len(self.images) >= self.n_views

    def offer(self, image: np.ndarray) -> bool:
        """True if this frame was kept."""
        self.n_offered += 1
        if self.done:
            return False
        found = charuco.detect(self.spec, image)
        if found is None:
            self.n_without_board += 1
            return False
        corners = _corner_map(found)
        for kept in self._corners:
            shared = corners.keys() & kept.keys()
            if not shared:
                continue  # a different part of the board: new information
            move = np.mean([np.linalg.norm(corners[k] - kept[k]) for k in shared])
            if move < self.min_move_px:
                return False
        self.images.append(np.array(image, copy=True))
        self._corners.append(corners)
        return True

    def finish(self) -> tuple[dict, dict]:
        """(camera yaml fields {intrinsics: ...}, residuals) from the kept views."""
        if len(self.images) < 4:
            raise CalibrationError(f"only {len(self.images)} distinct board views were captured (board seen in "
                                   f"{self.n_offered - self.n_without_board} of {self.n_offered} frames); move and "
                                   "tilt the board through the whole image, then finish")
        try:
            res = charuco.calibrate_intrinsics(self.spec, self.images)
        except ValueError as e:
            raise CalibrationError(str(e)) from None
        return intrinsics_fields(res), {"rms_px": round(res["rms_px"], 4), "n_views": res["n_views"]}


def intrinsics_fields(res: dict) -> dict:
    """calibrate_intrinsics() output -> the `intrinsics` mapping camera_node turns into CameraInfo."""
    k = np.asarray(res["K"], dtype=np.float64)
    return {"intrinsics": {"width": int(res["width"]), "height": int(res["height"]), "distortion_model": "plumb_bob",
                           "K": k.round(6).tolist(), "D": np.asarray(res["dist_coeffs"]).round(8).tolist()}}


def load_intrinsics(data: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), D) from a camera yaml mapping; CalibrationError naming the command that writes them."""
    intr = data.get("intrinsics")
    if not isinstance(intr, dict) or "K" not in intr:
        raise CalibrationError(f"{where} has no intrinsics: run `robot-stack calibrate intrinsics camera=...` first")
    return np.asarray(intr["K"], dtype=np.float64).reshape(3, 3), np.asarray(intr.get("D") or [0.0] * 5, dtype=np.float64)


class HandEyeViews:
    """Keeps (T_base_gripper, T_camera_board) pairs whose arm pose differs from every kept one by more than
    min_rotation_deg or min_translation_m (AX = XB needs rotations about different axes, not repeats)."""

    def __init__(self, spec: charuco.BoardSpec, k: np.ndarray, dist: np.ndarray, mode: str, n_samples: int = 12,
                 min_rotation_deg: float = 5.0, min_translation_m: float = 0.02, max_board_rms_px: float = 2.0):
        if mode not in ("eye_to_hand", "eye_in_hand"):
            raise ValueError(f"mode must be eye_to_hand or eye_in_hand, got {mode!r}")
        if n_samples < 3:
            raise ValueError(f"hand-eye needs >= 3 samples, got samples={n_samples}")
        self.spec, self.k, self.dist, self.mode = spec, np.asarray(k), np.asarray(dist), mode
        self.n_samples, self.min_rotation_deg, self.min_translation_m = int(n_samples), min_rotation_deg, min_translation_m
        self.max_board_rms_px = max_board_rms_px  # a blurred or half-hidden board gives a wrong pose: skip it
        self.base_gripper: list[np.ndarray] = []
        self.camera_board: list[np.ndarray] = []
        self.board_rms_px: list[float] = []

    @property
    def done(self) -> bool:
        return len(self.base_gripper) >= self.n_samples

    def offer(self, base_gripper: np.ndarray, image: np.ndarray) -> bool:
        if self.done:
            return False
        g = np.asarray(base_gripper, dtype=np.float64)
        for kept in self.base_gripper:
            rot_deg = np.degrees(rotation_angle_rad(g[:3, :3] @ kept[:3, :3].T))
            if rot_deg < self.min_rotation_deg and np.linalg.norm(g[:3, 3] - kept[:3, 3]) < self.min_translation_m:
                return False
        found = charuco.board_pose(self.spec, image, self.k, self.dist)
        if found is None or found[1] > self.max_board_rms_px:
            return False
        self.base_gripper.append(g)
        self.camera_board.append(found[0])
        self.board_rms_px.append(float(found[1]))
        return True

    def finish(self) -> tuple[dict, dict]:
        """({T_base_camera | T_gripper_camera: 4x4}, residuals)."""
        if len(self.base_gripper) < 3:
            raise CalibrationError(f"only {len(self.base_gripper)} hand-eye samples were captured; move the arm to "
                                   "more poses (rotate about different axes) with the board in view, holding still "
                                   "at each")
        try:
            x, res = handeye.calibrate(self.mode, self.base_gripper, self.camera_board)
        except ValueError as e:
            raise CalibrationError(str(e)) from None
        key = "T_base_camera" if self.mode == "eye_to_hand" else "T_gripper_camera"
        res = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
        res["board_reprojection_rms_px"] = round(float(np.sqrt(np.mean(np.square(self.board_rms_px)))), 4)
        res["mode"] = self.mode
        return {key: np.asarray(x).round(6).tolist()}, res


def still_pose(readings, before_ns: int, n_still: int = 3, tol_m: float = 0.001, tol_deg: float = 0.5):
    """The arm pose (4, 4) at an image captured at before_ns, if the last n_still arm poses up to it agree.

    readings: [(stamp_ns, T_base_gripper (4, 4))] in time order. An image and an arm reading are never taken
    at exactly the same instant; while the arm holds still the gap does not matter, while it moves it does.
    """
    prior = [(t, g) for t, g in readings if t <= before_ns][-n_still:]
    if len(prior) < n_still:
        return None
    ref = prior[-1][1]
    for _, g in prior[:-1]:
        if np.linalg.norm(g[:3, 3] - ref[:3, 3]) > tol_m:
            return None
        if np.degrees(rotation_angle_rad(g[:3, :3] @ ref[:3, :3].T)) > tol_deg:
            return None
    return ref
