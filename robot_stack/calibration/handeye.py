"""Hand-eye calibration from arm poses + board poses (solve AX = XB), with residuals.

    eye-to-hand (third-person camera, board held by the gripper):  X = T_base_camera
        G_i X^-1 ... :  T_base_camera C_i = G_i Y   ->  (G_j G_i^-1) X = X (C_j C_i^-1)
    eye-in-hand (wrist camera, board fixed on the table):          X = T_gripper_camera
        G_i X C_i = T_base_board                     ->  (G_j^-1 G_i) X = X (C_j C_i^-1)

G_i = T_base_gripper (from the arm), C_i = T_camera_board (from the board detection).
OpenCV 5's Python build here has no `cv2.calibrateHandEye`, so the solver is Park & Martin (1994),
"Robot sensor calibration: solving AX = XB on the Euclidean group": rotation from the axis-angle
vectors (eq. 15: R = (M^T M)^-1/2 M^T, M = sum beta_i alpha_i^T), translation by least squares.
"""

from __future__ import annotations

import itertools

import numpy as np

from robot_stack.arms.poses import rotation_angle_rad, so3_log


def _inv(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def solve_ax_xb(a_list, b_list) -> np.ndarray:
    """X (4, 4) with A_i X = X B_i for all motion pairs (needs >= 2 pairs with non-parallel rotation axes)."""
    m = np.zeros((3, 3))
    for a, b in zip(a_list, b_list, strict=True):
        m += np.outer(so3_log(b[:3, :3]), so3_log(a[:3, :3]))
    w, v = np.linalg.eigh(m.T @ m)
    if w.min() < 1e-10:
        raise ValueError("hand-eye motions are degenerate: rotate the gripper about at least two different axes")
    rx = v @ np.diag(w ** -0.5) @ v.T @ m.T
    lhs = np.vstack([a[:3, :3] - np.eye(3) for a in a_list])
    rhs = np.concatenate([rx @ b[:3, 3] - a[:3, 3] for a, b in zip(a_list, b_list, strict=True)])
    tx = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    x = np.eye(4)
    x[:3, :3], x[:3, 3] = rx, tx
    return x


def _spread(ts: list[np.ndarray]) -> dict:
    """How much a transform that should be constant varies across samples (the residual we report)."""
    mean_t = np.mean([t[:3, 3] for t in ts], axis=0)
    ref = ts[0][:3, :3]
    trans_mm = [1000 * float(np.linalg.norm(t[:3, 3] - mean_t)) for t in ts]
    rot_deg = [float(np.degrees(rotation_angle_rad(t[:3, :3] @ ref.T))) for t in ts]
    return {"translation_rms_mm": float(np.sqrt(np.mean(np.square(trans_mm)))),
            "translation_max_mm": float(max(trans_mm)), "rotation_max_deg": float(max(rot_deg)), "n_samples": len(ts)}


def calibrate(mode: str, base_gripper: list[np.ndarray], camera_board: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """mode 'eye_to_hand' -> T_base_camera, 'eye_in_hand' -> T_gripper_camera; plus residuals."""
    if len(base_gripper) != len(camera_board) or len(base_gripper) < 3:
        raise ValueError(f"need >= 3 paired samples (arm pose + board detection), got {len(base_gripper)} / "
                         f"{len(camera_board)}")
    g, c = [np.asarray(x) for x in base_gripper], [np.asarray(x) for x in camera_board]
    pairs = list(itertools.combinations(range(len(g)), 2))
    if mode == "eye_to_hand":
        a = [g[j] @ _inv(g[i]) for i, j in pairs]
        b = [c[j] @ _inv(c[i]) for i, j in pairs]
        x = solve_ax_xb(a, b)
        constant = [_inv(g[i]) @ x @ c[i] for i in range(len(g))]  # T_gripper_board, should not vary
    elif mode == "eye_in_hand":
        a = [_inv(g[j]) @ g[i] for i, j in pairs]
        b = [c[j] @ _inv(c[i]) for i, j in pairs]
        x = solve_ax_xb(a, b)
        constant = [g[i] @ x @ c[i] for i in range(len(g))]  # T_base_board, should not vary
    else:
        raise ValueError(f"mode must be eye_to_hand or eye_in_hand, got {mode!r}")
    return x, _spread(constant)
