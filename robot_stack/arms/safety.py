"""Command checks every arm gets, whatever the driver: shape/NaN rejection, per-step clamp, workspace box,
orientation limits, and the check of the joint command the driver is about to send.

Why here and not in the policy: a policy (or a person on a gamepad) can produce anything; the arm node
is the last place that sees every command before the hardware (DESIGN.md §1, SERL `clip_safety_box`,
LeRobot `max_relative_target`).

Two layers, because a clamp on the *target* alone does not bound the *motion*: inverse kinematics picks the
nearest solution it finds and a joint-speed scaling can move the end effector anywhere (issue 11 measured
0.118 m steps under a 0.04 m clamp).

1. `clamp_ee_delta` / `limit_pose_step` (controller, before IK): the target pose is projected into the
   workspace box and the orientation limits FIRST, then the step from the MEASURED pose is scaled to
   `max_delta_m` (as a vector) and `max_delta_rad` (as one geodesic angle, not per axis) -- clamp last,
   relative to where the arm is, as LeRobot's `max_relative_target`. From outside the box this moves towards
   it at the clamped rate, never jumps into it.
2. `limit_joint_command` (driver, after IK): the forward kinematics of the joint command, and of points on
   the straight joint-space path to it, must satisfy the same limits against the measured pose, and no joint
   may move more than `max_joint_step_rad`; otherwise the step is scaled back along that path (or refused:
   the measured joints, i.e. a hold with no preload).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from robot_stack.arms import poses
from robot_stack.types import ACTION_SPACES, GRIPPER_INDEX

# Numerical slack of the pose checks on the joint command (FK round-off, IK tolerance): 0.1 mm, 1 mrad.
POSE_TOL_M = 1e-4
POSE_TOL_RAD = 1e-3


class CommandRejected(ValueError):
    """A command that must not reach the arm; the message names what was wrong."""


@dataclass(frozen=True)
class SafetyConfig:
    """Per-rig limits (conf/rig/<rig>.yaml `safety:` or calibration/<rig>/arm.yaml).

    orientation_reference_rpy_rad / orientation_limits_rad: a box on roll, pitch, yaw of the end effector
    relative to a reference orientation (extrinsic base-frame rpy of R @ R_ref^T, the ee_delta convention);
    both None = no orientation limit. max_joint_step_rad: the largest change of any joint per control step
    (scalar or one per joint); None = no joint bound.
    """

    workspace_min_m: tuple[float, float, float]
    workspace_max_m: tuple[float, float, float]
    max_delta_m: float
    max_delta_rad: float
    max_command_age_ms: float
    max_joint_step_rad: float | tuple[float, ...] | None = None
    orientation_reference_rpy_rad: tuple[float, float, float] | None = None
    orientation_limits_rad: tuple[float, float, float] | None = None

    def __post_init__(self):
        lo, hi = np.asarray(self.workspace_min_m), np.asarray(self.workspace_max_m)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box must be 3 mins < 3 maxes, got {self.workspace_min_m} / {self.workspace_max_m}")
        if self.max_delta_m <= 0 or self.max_delta_rad <= 0 or self.max_command_age_ms <= 0:
            raise ValueError("max_delta_m, max_delta_rad and max_command_age_ms must be positive")
        if self.max_joint_step_rad is not None and np.any(np.asarray(self.max_joint_step_rad, dtype=float) <= 0):
            raise ValueError(f"max_joint_step_rad must be positive, got {self.max_joint_step_rad}")
        ref, lim = self.orientation_reference_rpy_rad, self.orientation_limits_rad
        if (ref is None) != (lim is None):
            raise ValueError("orientation limits need both orientation_reference_rpy_rad and orientation_limits_rad")
        if lim is not None and (len(lim) != 3 or len(ref) != 3 or min(lim) <= 0 or max(lim) >= np.pi):
            raise ValueError(f"orientation_limits_rad must be 3 half-widths in (0, pi), reference 3 angles; "
                             f"got {lim} around {ref}")

    @classmethod
    def from_mapping(cls, m) -> SafetyConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(m) - known
        if unknown:
            raise ValueError(f"unknown safety settings {sorted(unknown)}; known: {sorted(known)}")
        step = m.get("max_joint_step_rad")
        if step is not None:
            step = float(step) if np.ndim(step) == 0 else tuple(float(v) for v in step)

        def triple(key):
            v = m.get(key)
            return None if v is None else tuple(float(x) for x in v)

        return cls(
            workspace_min_m=tuple(float(v) for v in m["workspace_min_m"]),
            workspace_max_m=tuple(float(v) for v in m["workspace_max_m"]),
            max_delta_m=float(m["max_delta_m"]),
            max_delta_rad=float(m["max_delta_rad"]),
            max_command_age_ms=float(m["max_command_age_ms"]),
            max_joint_step_rad=step,
            orientation_reference_rpy_rad=triple("orientation_reference_rpy_rad"),
            orientation_limits_rad=triple("orientation_limits_rad"),
        )

    # -- the measures every check uses -------------------------------------------------------------------
    def box_excess_m(self, pos_m: np.ndarray) -> float:
        """Distance (m) from `pos_m` to the workspace box; 0 inside."""
        p = np.asarray(pos_m, dtype=np.float64)
        return float(np.linalg.norm(p - np.clip(p, self.workspace_min_m, self.workspace_max_m)))

    def orientation_rpy(self, mat: np.ndarray) -> np.ndarray:
        """roll, pitch, yaw of `mat` relative to the reference orientation (zeros when there is none)."""
        if self.orientation_reference_rpy_rad is None:
            return np.zeros(3)
        return mat_to_rpy(np.asarray(mat) @ rpy_to_mat(self.orientation_reference_rpy_rad).T)

    def orientation_excess_rad(self, mat: np.ndarray) -> float:
        """How far (rad, worst axis) `mat` is outside the orientation limits; 0 inside or without limits."""
        if self.orientation_limits_rad is None:
            return 0.0
        over = np.abs(self.orientation_rpy(mat)) - np.asarray(self.orientation_limits_rad)
        return float(max(over.max(), 0.0))


# -- rotations: the arm package's own helpers (robot_stack/arms/poses.py), under the names the checks read --------
# rpy = extrinsic base-frame roll, pitch, yaw, R = Rz(yaw) Ry(pitch) Rx(roll): the ee_delta convention.
rpy_to_mat = poses.euler_xyz_to_matrix
mat_to_rpy = poses.matrix_to_euler_xyz
rotation_angle = poses.rotation_angle_rad  # geodesic angle: the one number a per-step rotation limit bounds
quat_xyzw_to_mat = poses.quat_xyzw_to_matrix
_rotvec = poses.so3_log
_rotvec_to_mat = poses.so3_exp


# -- layer 1: the target pose ---------------------------------------------------------------------------
def validate_command(names: Sequence[str], values: Sequence[float], action_space: str) -> np.ndarray:
    """Return the command as float64 (D,) or raise CommandRejected (names, shape, non-finite).

    The gripper value is not rejected when outside [0, 1]: it is clipped by the clamp (a teleop device's
    overshoot is not a fault).
    """
    expected = ACTION_SPACES[action_space]
    if tuple(names) != expected:
        raise CommandRejected(f"action names {list(names)} do not match the {action_space} space {list(expected)}")
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (len(expected),):
        raise CommandRejected(f"action has {a.size} values, the {action_space} space needs {len(expected)}")
    if not np.all(np.isfinite(a)):
        raise CommandRejected(f"action contains NaN/inf: {a.tolist()}")
    return a


def _limit_orientation(meas_mat: np.ndarray, tgt_mat: np.ndarray, cfg: SafetyConfig) -> np.ndarray:
    """The target orientation inside the orientation limits (or no further out than the measured one), at
    most max_delta_rad from the measured orientation."""
    if cfg.orientation_limits_rad is not None:
        ref = rpy_to_mat(cfg.orientation_reference_rpy_rad)
        lim = np.asarray(cfg.orientation_limits_rad)
        # From outside the limits the allowed box is widened to where the arm is, so it may come back in.
        allow = np.maximum(lim, np.abs(cfg.orientation_rpy(meas_mat)))
        tgt_mat = rpy_to_mat(np.clip(cfg.orientation_rpy(tgt_mat), -allow, allow)) @ ref
    rv = _rotvec(tgt_mat @ meas_mat.T)
    angle = float(np.linalg.norm(rv))
    if angle > cfg.max_delta_rad:
        rv *= cfg.max_delta_rad / angle
    out = _rotvec_to_mat(rv) @ meas_mat
    # The rpy box is not convex along the geodesic: verify, and shorten the rotation until it holds.
    limit = max(cfg.orientation_excess_rad(meas_mat), 0.0) + 1e-9
    s = 1.0
    while cfg.orientation_excess_rad(out) > limit and s > 1e-3:
        s *= 0.5
        out = _rotvec_to_mat(rv * s) @ meas_mat
    return out if cfg.orientation_excess_rad(out) <= limit else meas_mat


def limit_pose_step(meas_pos: np.ndarray, meas_mat: np.ndarray, tgt_pos: np.ndarray, tgt_mat: np.ndarray,
                    cfg: SafetyConfig) -> tuple[np.ndarray, np.ndarray]:
    """The target pose made safe against the MEASURED pose: (pos (3,), mat (3, 3)).

    Position: projected into the box, then the step from the measured position scaled (as a vector) to
    max_delta_m -- box first, clamp last, so from outside the box the arm comes back at the clamped rate.
    Orientation: into the orientation limits, then the geodesic step scaled to max_delta_rad.
    """
    meas_pos = np.asarray(meas_pos, dtype=np.float64)
    meas_mat = np.asarray(meas_mat, dtype=np.float64)
    d = np.clip(np.asarray(tgt_pos, dtype=np.float64), cfg.workspace_min_m, cfg.workspace_max_m) - meas_pos
    norm = float(np.linalg.norm(d))
    if norm > cfg.max_delta_m:
        d *= cfg.max_delta_m / norm
    return meas_pos + d, _limit_orientation(meas_mat, np.asarray(tgt_mat, dtype=np.float64), cfg)


def clamp_ee_delta(action: np.ndarray, ee_xyz_m: np.ndarray, cfg: SafetyConfig,
                   ee_quat_xyzw: np.ndarray | None = None) -> np.ndarray:
    """Clamp an ee_delta action (7,) against the measured ee pose: see `limit_pose_step`.

    The rotation is returned as the rpy of the limited rotation (its geodesic angle <= max_delta_rad).
    Without the measured orientation the orientation limits cannot be applied (only the step angle is).
    """
    a = np.array(action, dtype=np.float64)
    meas_mat = np.eye(3) if ee_quat_xyzw is None else quat_xyzw_to_mat(ee_quat_xyzw)
    check = cfg if ee_quat_xyzw is not None else _without_orientation_limits(cfg)
    pos, mat = limit_pose_step(ee_xyz_m, meas_mat, np.asarray(ee_xyz_m) + a[:3], rpy_to_mat(a[3:6]) @ meas_mat, check)
    a[:3] = pos - np.asarray(ee_xyz_m, dtype=np.float64)
    a[3:6] = mat_to_rpy(mat @ meas_mat.T)
    a[GRIPPER_INDEX] = float(np.clip(a[GRIPPER_INDEX], 0.0, 1.0))
    return a


def _without_orientation_limits(cfg: SafetyConfig) -> SafetyConfig:
    if cfg.orientation_limits_rad is None:
        return cfg
    import dataclasses
    return dataclasses.replace(cfg, orientation_reference_rpy_rad=None, orientation_limits_rad=None)


# -- layer 2: the joint command -------------------------------------------------------------------------
@dataclass(frozen=True)
class JointCheck:
    """What `limit_joint_command` decided: the joints to send, the fraction of the planned step kept
    (1 = as planned, 0 = refused: the measured joints), and why it was cut (empty when not)."""

    q_rad: np.ndarray
    scale: float
    reason: str


def pose_violation(meas_pos, meas_mat, pos, mat, cfg: SafetyConfig) -> str:
    """The first limit a commanded pose breaks relative to the measured pose, or '' when it breaks none."""
    step = float(np.linalg.norm(np.asarray(pos) - meas_pos))
    if step > cfg.max_delta_m + POSE_TOL_M:
        return f"translation {step:.4f} m > max_delta_m {cfg.max_delta_m}"
    angle = rotation_angle(np.asarray(mat) @ np.asarray(meas_mat).T)
    if angle > cfg.max_delta_rad + POSE_TOL_RAD:
        return f"rotation {angle:.4f} rad > max_delta_rad {cfg.max_delta_rad}"
    out, out_now = cfg.box_excess_m(pos), cfg.box_excess_m(meas_pos)
    if out > out_now + POSE_TOL_M and out > POSE_TOL_M:
        return f"{out * 1000:.1f} mm outside the workspace box"
    rot_out, rot_now = cfg.orientation_excess_rad(mat), cfg.orientation_excess_rad(meas_mat)
    if rot_out > rot_now + POSE_TOL_RAD and rot_out > POSE_TOL_RAD:
        return f"orientation {rot_out:.3f} rad outside the orientation limits"
    return ""


def limit_joint_command(q_meas: np.ndarray, q_cmd: np.ndarray,
                        fk: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                        cfg: SafetyConfig, n_path_checks: int = 4) -> JointCheck:
    """Bound a joint command by what it makes the end effector do.

    q_meas: measured joints; q_cmd: the driver's planned command (IK output); fk(q) -> (pos (3,), mat (3, 3)).
    The command is first scaled (whole vector, direction kept) so no joint moves more than
    max_joint_step_rad, then the largest fraction s of the step q_meas -> q_cmd is found for which the FK of
    the end point and of `n_path_checks` points on the way satisfies `pose_violation` against the measured
    pose. s = 0 (refuse) sends the measured joints: a hold with no preload, never a blind move.
    """
    q_meas = np.asarray(q_meas, dtype=np.float64)
    dq = np.asarray(q_cmd, dtype=np.float64) - q_meas
    reason = ""
    scale = 1.0
    if cfg.max_joint_step_rad is not None:
        bound = np.broadcast_to(np.asarray(cfg.max_joint_step_rad, dtype=np.float64), dq.shape)
        worst = float(np.max(np.abs(dq) / bound))
        if worst > 1.0:
            scale = 1.0 / worst
            reason = f"joint step {np.max(np.abs(dq)):.3f} rad over max_joint_step_rad"
    meas_pos, meas_mat = fk(q_meas)

    def violation(s: float) -> str:
        for k in range(1, n_path_checks + 1):
            pos, mat = fk(q_meas + (s * k / n_path_checks) * dq)
            why = pose_violation(meas_pos, meas_mat, pos, mat, cfg)
            if why:
                return why
        return ""

    why = violation(scale)
    if why:
        reason = reason or why
        lo, hi = 0.0, scale  # lo always passes (s = 0 is the measured pose)
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            if violation(mid):
                hi = mid
            else:
                lo = mid
        scale = lo
    return JointCheck(q_meas + scale * dq, scale, reason)
