"""Small rigid-transform helpers shared by the real-arm drivers and calibration (numpy only).

Conventions: quaternions are xyzw (as in `ArmState.ee_pose`); Euler angles are extrinsic xyz
(roll about base x, then pitch about base y, then yaw about base z), the BridgeData `ee_delta` convention.
"""

from __future__ import annotations

import numpy as np


def euler_xyz_to_matrix(rpy_rad) -> np.ndarray:
    """(3,) roll, pitch, yaw -> (3, 3) rotation R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = (float(v) for v in rpy_rad)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_euler_xyz(rot: np.ndarray) -> np.ndarray:
    """Inverse of euler_xyz_to_matrix (pitch in [-pi/2, pi/2])."""
    pitch = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    roll = np.arctan2(rot[2, 1], rot[2, 2])
    yaw = np.arctan2(rot[1, 0], rot[0, 0])
    return np.array([roll, pitch, yaw])


def matrix_to_quat_xyzw(rot: np.ndarray) -> np.ndarray:
    m = np.asarray(rot, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def quat_xyzw_to_matrix(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose7_to_matrix(pose7) -> np.ndarray:
    """(7,) xyz + quat xyzw -> (4, 4) homogeneous transform."""
    t = np.eye(4)
    t[:3, :3] = quat_xyzw_to_matrix(pose7[3:7])
    t[:3, 3] = pose7[:3]
    return t


def matrix_to_pose7(t: np.ndarray) -> np.ndarray:
    return np.concatenate([t[:3, 3], matrix_to_quat_xyzw(t[:3, :3])])


def rotation_angle_rad(rot: np.ndarray) -> float:
    """Angle of a rotation matrix (geodesic distance from identity)."""
    return float(np.arccos(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)))


def so3_log(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis * angle (3,)."""
    angle = rotation_angle_rad(rot)
    if angle < 1e-9:
        return np.zeros(3)
    w = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if np.pi - angle < 1e-6:  # near pi the antisymmetric part vanishes; use the symmetric part
        axis = np.sqrt(np.clip((np.diag(rot) + 1.0) / 2.0, 0.0, None))
        i = int(np.argmax(axis))
        for j in range(3):
            if j != i and rot[i, j] + rot[j, i] < 0:
                axis[j] = -axis[j]
        return axis / np.linalg.norm(axis) * angle
    return w / (2.0 * np.sin(angle)) * angle


def so3_exp(w) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = _skew(w / angle)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _skew(v) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def twist_exp(screw, theta: float) -> np.ndarray:
    """exp([S] theta) for a unit screw axis S = (w, v) (6,): (4, 4). Modern Robotics eq. 3.88."""
    w, v = np.asarray(screw[:3], dtype=np.float64), np.asarray(screw[3:], dtype=np.float64)
    t = np.eye(4)
    if np.linalg.norm(w) < 1e-12:
        t[:3, 3] = v * theta
        return t
    k = _skew(w)
    t[:3, :3] = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    g = np.eye(3) * theta + (1 - np.cos(theta)) * k + (theta - np.sin(theta)) * k @ k
    t[:3, 3] = g @ v
    return t


def fk_space(home_m: np.ndarray, screws: np.ndarray, joints_rad) -> np.ndarray:
    """Product-of-exponentials forward kinematics in the space frame.

    home_m: (4, 4) end-effector pose at zero joints; screws: (6, n) space-frame screw axes (the
    Interbotix `robot_des.M` / `robot_des.Slist` convention); joints_rad: (n,).
    """
    t = np.eye(4)
    for i, q in enumerate(joints_rad):
        t = t @ twist_exp(screws[:, i], float(q))
    return t @ home_m


def apply_ee_delta(ee_t: np.ndarray, delta6) -> np.ndarray:
    """Target pose for an `ee_delta` step: translate in the base frame, rotate about base axes at the EE."""
    target = np.array(ee_t, dtype=np.float64)
    target[:3, 3] = ee_t[:3, 3] + np.asarray(delta6[:3])
    target[:3, :3] = euler_xyz_to_matrix(delta6[3:6]) @ ee_t[:3, :3]
    return target


def pose_delta(from_t: np.ndarray, to_t: np.ndarray) -> np.ndarray:
    """(6,) ee_delta (dxyz, droll, dpitch, dyaw) that takes `from_t` to `to_t` (inverse of apply_ee_delta)."""
    d = np.zeros(6)
    d[:3] = to_t[:3, 3] - from_t[:3, 3]
    d[3:] = matrix_to_euler_xyz(to_t[:3, :3] @ from_t[:3, :3].T)
    return d
