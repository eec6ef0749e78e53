"""Adversarial command streams for the safety layer, and the meter that checks what the arm then did.

Used by `tests/arms/test_adversarial.py` (short, in `make test`, plain Python over the real MuJoCo arms and
over real ROS topics) and `benchmarks/bench_safety.py` (>= 10k commands per arm). The streams are what a
careless user or a broken policy sends (issue 11): random steps at 5x the clamp, malformed messages, pushing
into each wall and corner, continuous rotation about each axis and all three at once, a singular wrist and a
start outside the box. The meter judges each executed step on the motion actually commanded (forward
kinematics of the joint command) and on the measured pose that followed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from robot_stack.arms.safety import SafetyConfig, quat_xyzw_to_mat, rotation_angle
from robot_stack.types import EE_DELTA_ACTION_NAMES

STREAMS = ("random", "malformed", "wall", "corner", "rotation", "singular_wrist", "start_outside")

# Measured-pose slack: the position servos' overshoot and carried momentum within one control step (the
# commanded motion is checked exactly). bench_safety measured at most 7.9 mm / 0.011 rad beyond the clamp on
# the sim WidowX away from contact (benchmarks/results/safety.md); this is that with a little margin.
MEASURED_TOL_M = 0.01
MEASURED_TOL_RAD = 0.03
# Over topics the meter cannot tell contact steps apart (no contact flag on ee_pose), so the measured slack
# there includes contact (bench: <= 10.8 mm box, 0.07 rad over the clamp at 5 Hz, 0.11 rad at 10 Hz). The exact
# check over topics is the arm node's own judgement of the commanded motion (arm/status cmd_over_limit).
ROS_MEASURED_TOL_M = 0.015
ROS_MEASURED_TOL_RAD = 0.12


def commands(kind: str, cfg: SafetyConfig, n: int, seed: int = 0) -> Iterator[tuple[tuple[str, ...], list]]:
    """n (names, values) commands of one adversarial kind; values may be malformed on purpose."""
    rng = np.random.default_rng(seed)
    names = EE_DELTA_ACTION_NAMES
    big_m, big_rad = 5 * cfg.max_delta_m, 5 * cfg.max_delta_rad
    for i in range(n):
        a = np.zeros(7)
        a[6] = float(rng.integers(0, 2))
        if kind in ("random", "start_outside"):
            a[:3] = rng.uniform(-big_m, big_m, 3)
            a[3:6] = rng.uniform(-big_rad, big_rad, 3)
            a[6] = rng.uniform(-1, 2)
            if kind == "start_outside" and i % 3 == 0:
                a[:6] = 0.0  # a zero action from outside the box must not jump into it (review H1)
        elif kind == "malformed":
            bad = i % 8
            if bad == 0:
                yield names, [float("nan")] + [0.0] * 6
                continue
            if bad == 1:
                yield names, [0.0, float("inf"), 0, 0, 0, 0, 1]
                continue
            if bad == 2:
                yield names[:6], [0.01] * 6
                continue
            if bad == 3:
                yield tuple(reversed(names)), [0.01] * 7
                continue
            if bad == 4:
                yield names, [1e308, -1e308, 1e308, 1e308, -1e308, 1e308, 1e308]
                continue
            if bad == 5:
                yield names + ("extra",), [0.0] * 8
                continue
            a[:3] = rng.uniform(-big_m, big_m, 3)
        elif kind == "wall":
            axis, sign = divmod((i * 6) // max(n, 1), 2)
            a[axis] = big_m * (1 if sign == 0 else -1)
        elif kind == "corner":
            corner = (i * 8) // max(n, 1)
            a[:3] = big_m * np.array([1 if corner & 1 else -1, 1 if corner & 2 else -1, 1 if corner & 4 else -1])
        elif kind == "rotation":
            phase = (i * 7) // max(n, 1)
            if phase < 6:
                a[3 + phase // 2] = big_rad * (1 if phase % 2 == 0 else -1)
            else:
                a[3:6] = big_rad  # all three at once: a per-axis clip let this reach sqrt(3) x the limit
        elif kind == "singular_wrist":
            a[3:6] = rng.choice([-big_rad, big_rad], 3) * rng.integers(0, 2, 3)
            a[:3] = rng.normal(0, cfg.max_delta_m, 3)
        else:
            raise ValueError(f"unknown stream {kind!r}; known: {STREAMS}")
        yield names, a.tolist()


@dataclass
class LimitMeter:
    """Counts executed steps over a limit, on the commanded motion and on the measured pose.

    Per executed step: `commanded` = FK of the joint command vs the measured pose when it was sent (exact,
    POSE_TOL slack only); `measured` = the measured pose after the step vs before (MEASURED_TOL slack).
    Box checks only count steps that started inside the box; from outside, the distance must not grow.
    """

    cfg: SafetyConfig
    measured_tol_m: float = MEASURED_TOL_M
    measured_tol_rad: float = MEASURED_TOL_RAD
    n_commands: int = 0
    n_executed: int = 0
    max_cmd_step_m: float = 0.0
    max_cmd_step_rad: float = 0.0
    max_meas_step_m: float = 0.0
    max_meas_step_rad: float = 0.0
    max_box_excess_m: float = 0.0  # of measured poses that started inside
    max_orient_excess_rad: float = 0.0
    violations: list[str] = field(default_factory=list)
    # Steps in contact (the table or an object pushes the arm): measured deviations there are reported
    # apart, because contact forces, not the command, moved the arm. The commanded motion is checked always.
    n_contact: int = 0
    contact_max_meas_step_m: float = 0.0
    contact_max_meas_step_rad: float = 0.0
    contact_max_box_excess_m: float = 0.0
    contact_max_orient_excess_rad: float = 0.0

    def step(self, before_pose7: np.ndarray, after_pose7: np.ndarray,
             commanded: tuple[np.ndarray, np.ndarray] | None, executed: bool, label: str = "",
             contact: bool = False) -> None:
        from robot_stack.arms.safety import POSE_TOL_M, POSE_TOL_RAD

        c = self.cfg
        p0, m0 = np.asarray(before_pose7[:3]), quat_xyzw_to_mat(before_pose7[3:7])
        p1, m1 = np.asarray(after_pose7[:3]), quat_xyzw_to_mat(after_pose7[3:7])
        self.n_commands += 1
        self.n_executed += int(executed)
        if commanded is not None:
            pc, mc = commanded
            d_m, d_rad = float(np.linalg.norm(pc - p0)), rotation_angle(mc @ m0.T)
            self.max_cmd_step_m = max(self.max_cmd_step_m, d_m)
            self.max_cmd_step_rad = max(self.max_cmd_step_rad, d_rad)
            if d_m > c.max_delta_m + POSE_TOL_M or d_rad > c.max_delta_rad + POSE_TOL_RAD:
                self.violations.append(f"{label}: commanded step {d_m:.4f} m / {d_rad:.4f} rad")
            if c.box_excess_m(pc) > max(c.box_excess_m(p0), 0.0) + POSE_TOL_M:
                self.violations.append(f"{label}: commanded pose {c.box_excess_m(pc) * 1000:.1f} mm outside the box")
        d_m, d_rad = float(np.linalg.norm(p1 - p0)), rotation_angle(m1 @ m0.T)
        box_out = c.box_excess_m(p1) if c.box_excess_m(p0) <= 1e-9 else 0.0
        rot_out = c.orientation_excess_rad(m1) if c.orientation_excess_rad(m0) <= 1e-9 else 0.0
        if contact:
            self.n_contact += 1
            self.contact_max_meas_step_m = max(self.contact_max_meas_step_m, d_m)
            self.contact_max_meas_step_rad = max(self.contact_max_meas_step_rad, d_rad)
            self.contact_max_box_excess_m = max(self.contact_max_box_excess_m, box_out)
            self.contact_max_orient_excess_rad = max(self.contact_max_orient_excess_rad, rot_out)
            return
        self.max_meas_step_m = max(self.max_meas_step_m, d_m)
        self.max_meas_step_rad = max(self.max_meas_step_rad, d_rad)
        self.max_box_excess_m = max(self.max_box_excess_m, box_out)
        self.max_orient_excess_rad = max(self.max_orient_excess_rad, rot_out)
        if d_m > c.max_delta_m + self.measured_tol_m or d_rad > c.max_delta_rad + self.measured_tol_rad:
            self.violations.append(f"{label}: measured step {d_m:.4f} m / {d_rad:.4f} rad")
        if box_out > self.measured_tol_m:
            self.violations.append(f"{label}: measured pose {box_out * 1000:.1f} mm outside the box")
        if rot_out > self.measured_tol_rad:
            self.violations.append(f"{label}: measured orientation {rot_out:.3f} rad outside the limits")

    def summary(self) -> dict:
        return {"commands": self.n_commands, "executed": self.n_executed, "violations": len(self.violations),
                "max_cmd_step_m": round(self.max_cmd_step_m, 5), "max_cmd_step_rad": round(self.max_cmd_step_rad, 5),
                "max_meas_step_m": round(self.max_meas_step_m, 5),
                "max_meas_step_rad": round(self.max_meas_step_rad, 5),
                "max_box_excess_m": round(self.max_box_excess_m, 5),
                "max_orient_excess_rad": round(self.max_orient_excess_rad, 5),
                "contact_steps": self.n_contact,
                "contact_max_meas_step_m": round(self.contact_max_meas_step_m, 5),
                "contact_max_meas_step_rad": round(self.contact_max_meas_step_rad, 5),
                "contact_max_box_excess_m": round(self.contact_max_box_excess_m, 5),
                "contact_max_orient_excess_rad": round(self.contact_max_orient_excess_rad, 5),
                "first_violations": self.violations[:5]}


def start_pose(sim, kind: str, cfg: SafetyConfig) -> None:
    """Put the sim arm where a stream starts: at a singular wrist, or outside the box (by hand)."""
    q = np.asarray(sim.joint_positions(), dtype=np.float64).copy()
    if kind == "singular_wrist":
        # Wrist bend at 0: the forearm-roll and wrist-rotate axes line up (WidowX joint 4, Panda joint 6).
        q[4 if len(q) == 6 else 5] = 0.0
        sim.place_arm(q)
    elif kind == "start_outside":
        lo, hi = np.asarray(cfg.workspace_min_m), np.asarray(cfg.workspace_max_m)
        # Lift the shoulder until the ee is above the box top (or as far as the joint range goes).
        for _ in range(60):
            if sim.ee_pose()[2] > hi[2] + 0.02 or sim.ee_pose()[0] > hi[0] + 0.02:
                break
            q[1] -= 0.05
            sim.place_arm(q)
        del lo


def run_sim_stream(sim, cfg: SafetyConfig, kind: str, n: int, seed: int = 0, meter: LimitMeter | None = None
                   ) -> LimitMeter:
    """Drive a MuJoCo arm through ArmController + SimArm with one stream; return the meter.

    The controller is the one the rig node runs; the arm starts homed (a fresh reset), or placed by
    `start_pose`. A start outside the box is acknowledged (arm/enable) after 5 held ticks, as an operator would.
    """
    import time

    from robot_stack.arms.controller import ArmController
    from robot_stack.arms.safety import CommandRejected
    from robot_stack.arms.sim_arm import SimArm

    meter = meter or LimitMeter(cfg)
    sim.reset(seed=seed)
    start_pose(sim, kind, cfg)
    arm = SimArm(sim)
    ctl = ArmController(arm, cfg)
    for i, (names, values) in enumerate(commands(kind, cfg, n, seed)):
        if kind in ("start_outside", "singular_wrist") and i == 5 and not ctl._outside_ack:
            ctl.set_enabled(True, "stress test operator")
        before = _fk_pose7(sim)
        contact_before = sim.arm_in_contact()
        now = time.time_ns()
        with contextlib.suppress(CommandRejected):  # malformed on purpose: counted by the controller
            ctl.submit(names, values, now, now, "stress")
        arm.last_check = None
        n_before = ctl.n_executed
        ctl.tick(time.time_ns())
        commanded = None if arm.last_check is None else sim.fk(arm.last_check.q_rad)
        meter.step(before, _fk_pose7(sim), commanded, ctl.n_executed > n_before, f"{kind}#{i}",
                   contact=contact_before or sim.arm_contacted_in_last_step() or sim.arm_in_contact())
    if ctl.fault:
        meter.violations.append(f"{kind}: driver fault {ctl.fault}")
    return meter


def _fk_pose7(sim) -> np.ndarray:
    """The measured pose as the driver's check sees it: FK of the measured joints (MuJoCo's site pose after
    mj_step lags qpos by one substep)."""
    from robot_stack.arms.poses import matrix_to_pose7

    pos, mat = sim.fk(sim.joint_positions())
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = mat, pos
    return matrix_to_pose7(t)

