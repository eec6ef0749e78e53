"""Small rotation helpers (numpy only) shared by the sim and the scripted expert.

Conventions: quaternions are xyzw (ROS order) unless a name says wxyz (MuJoCo order); roll/pitch/yaw are
extrinsic rotations about the base x, y, z axes, R = Rz(yaw) @ Ry(pitch) @ Rx(roll) -- the ee_delta
action convention.
"""

from __future__ import annotations

import numpy as np


def rpy_to_mat(rpy_rad: np.ndarray) -> np.ndarray:
    """(3,) roll, pitch, yaw -> (3, 3) rotation matrix Rz @ Ry @ Rx."""
    r, p, y = (float(v) for v in rpy_rad)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def mat_to_rpy(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) roll, pitch, yaw (inverse of rpy_to_mat away from pitch = +-pi/2)."""
    return np.array([
        np.arctan2(mat[2, 1], mat[2, 2]),
        np.arcsin(np.clip(-mat[2, 0], -1.0, 1.0)),
        np.arctan2(mat[1, 0], mat[0, 0]),
    ])


def mat_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) axis * angle, angle in [0, pi]."""
    cos_angle = np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_angle))
    axis_sin = 0.5 * np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if angle < 1e-6:
        return axis_sin
    if np.pi - angle < 1e-4:
        # sin(angle) ~ 0: read the axis from the symmetric part instead.
        axis = np.sqrt(np.clip((np.diag(mat) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis = (mat[:, k] + np.eye(3)[:, k]) / (2.0 * axis[k])
        return angle * axis / np.linalg.norm(axis)
    return angle * axis_sin / np.sin(angle)


def quat_xyzw_to_mat(quat_xyzw: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion xyzw -> (3, 3) rotation matrix."""
    x, y, z, w = (float(v) for v in np.asarray(quat_xyzw) / np.linalg.norm(quat_xyzw))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def wxyz_to_xyzw(quat_wxyz: np.ndarray) -> np.ndarray:
    return np.array([quat_wxyz[1], quat_wxyz[2], quat_wxyz[3], quat_wxyz[0]])


def yaw_to_quat_wxyz(yaw_rad: float) -> np.ndarray:
    return np.array([np.cos(yaw_rad / 2), 0.0, 0.0, np.sin(yaw_rad / 2)])


def top_down_mat(yaw_rad: float) -> np.ndarray:
    """(3, 3) orientation of a gripper pointing straight down (tool x = -z), fingers closing along Rz(yaw) y.

    At yaw 0 this is the zero-pose gripper pitched down by +90 deg about y: tool x -> -z, tool z -> +x.
    """
    return rpy_to_mat(np.array([0.0, 0.0, yaw_rad])) @ rpy_to_mat(np.array([0.0, np.pi / 2, 0.0]))


def cube_yaw_rad(quat_xyzw: np.ndarray) -> float:
    """Yaw (rad, about base z) of a cube's face-aligned frame; meaningful only modulo 90 deg (cube symmetry).

    Read from the body axis that lies flattest (smallest |z| component), so a cube resting on any face gives
    the same value modulo 90 deg; upright it equals mat_to_rpy(quat_xyzw_to_mat(q))[2] modulo 90 deg.
    """
    mat = quat_xyzw_to_mat(quat_xyzw)
    k = int(np.argmin(np.abs(mat[2])))
    return float(np.arctan2(mat[1, k], mat[0, k]))
