"""ScriptedExpert: a waypoint state machine that solves the sim tasks with privileged object poses.

Pick-and-place tasks (put X in/on C, take X out of/off C):

    approach (hover over cube, align yaw) ─► descend ─► close ─► lift ─► carry (hover over place point)
       ▲                                                     │ cube not in the gripper (<= 2 retries)
       └─────────────────────────────────────────────────────┘
        carry ─► lower ─► release ─► retreat ─► done (then holds still, gripper open)

Every action is an ee_delta toward the current phase's waypoint, clipped to the per-step limits
(2 cm and 0.1 rad per step at 5 Hz, what a person on a space mouse does), with optional Gaussian noise on
the translation so recorded demos cover recoveries, and optional suboptimality: `truncate_after` steps
(the script gives up mid-task: a failure for prior data).

Push tasks (push X to the left/right), gripper closed throughout:

    approach (hover behind X) ─► descend (tips 5 mm above the table) ─► push (slide X past the goal line) ─► retreat

Everything is computed in the kitchen frame (robot_stack.sim.kitchen); heights that depend on the arm
(where the pads are relative to the ee point) come from the sim's ArmSpec, so both arms share the script. The gripper always points straight down (top-down
grasps) with its fingers aligned to the nearest cube face. It is closed-loop: each step re-reads the
measured ee pose, so noise is corrected on the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_stack.sim import rotations
from robot_stack.sim.tasks import get_task
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

MAX_STEP_M = 0.02
MAX_STEP_RAD = 0.1
REACHED_SLACK_M = 0.004
HOVER_Z_M = 0.08  # finger tips (15.6 mm below the ee point) clear the 3 cm bowl wall
CARRY_Z_M = 0.10  # a held cube's bottom (~19 mm below the ee point) clears the bowl wall
RETREAT_Z_M = 0.12
# ee point above the cube centre when grasping: the WidowX pads then reach to ~4 mm above the table
# (their tips are 15.6 mm below its ee point); an arm whose tips reach further below the ee grasps higher.
GRASP_ABOVE_CUBE_CENTER_M = 0.004
WIDOWX_TIP_BELOW_EE_M = 0.0156
# Height of the object bottom above its resting surface when the gripper lets go ("in" drops a bit more:
# the container floor is a smaller target than the table).
RELEASE_DROP_M = {"in": 0.012, "out": 0.008}
# Push: ee this far behind the object centre (half cube + closed-finger half width + margin); finger tips
# this high above the table; the object is pushed this far past the goal line.
PUSH_BEHIND_M = 0.035
PUSH_TIP_CLEARANCE_M = 0.005
PUSH_OVERSHOOT_M = 0.02
GRIPPER_HOLD_STEPS = 2  # 0.4 s at 5 Hz: the fingers close or open fully (tau 0.1 s)
HELD_CUBE_TOLERANCE_M = 0.02
MAX_REGRASPS = 2
MAX_STEPS_PER_PHASE = 20  # a phase that cannot finish (blocked, unreachable) is given up, not looped


@dataclass(frozen=True)
class _Phase:
    name: str
    gripper: float  # commanded opening during the phase, 1 = open
    hold_steps: int = 0  # > 0: stand still this many steps (gripper actuation) instead of moving


_PUSH_PHASES: tuple[_Phase, ...] = (
    _Phase("approach", 0.0),
    _Phase("descend", 0.0),
    _Phase("push", 0.0),
    _Phase("retreat", 0.0),
)

_PHASES: tuple[_Phase, ...] = (
    _Phase("approach", 1.0),
    _Phase("descend", 1.0),
    _Phase("close", 0.0, hold_steps=GRIPPER_HOLD_STEPS),
    _Phase("lift", 0.0),
    _Phase("carry", 0.0),
    _Phase("lower", 0.0),
    _Phase("release", 1.0, hold_steps=GRIPPER_HOLD_STEPS),
    _Phase("retreat", 1.0),
)


def _face_aligned_yaw_rad(cube_quat_xyzw: np.ndarray) -> float:
    """Gripper yaw in [-pi/4, pi/4] that puts the fingers on a pair of cube faces (cube is 90-deg symmetric)."""
    mat = rotations.quat_xyzw_to_mat(cube_quat_xyzw)
    yaw = float(np.arctan2(mat[1, 0], mat[0, 0]))
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class ScriptedExpert:
    """Solves `task` in a TabletopSim from privileged state; `act(sim)` once per control step.

    noise_std: Gaussian std (m) added to each translation step. truncate_after: after this many actions the
    script stops (holds still, gripper as it was): a deliberately failed demo. None = run to the end.
    """

    def __init__(self, task: str, noise_std: float = 0.0, seed: int = 0, truncate_after: int | None = None):
        self._task = get_task(task)  # unknown names fail here with the list of registered tasks
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0 (metres per step), got {noise_std}")
        if truncate_after is not None and truncate_after < 0:
            raise ValueError(f"truncate_after must be >= 0 steps or None, got {truncate_after}")
        self.task = task
        self.noise_std = float(noise_std)
        self.truncate_after = truncate_after
        self._phases = _PUSH_PHASES if self._task.kind == "push" else _PHASES
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start the script from the first phase; a seed restarts the noise sequence."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._phase_index = 0
        self._steps_in_phase = 0
        self._n_actions = 0
        self._retries = 0
        self._grasp_yaw_rad: float | None = None
        self._grasp_xy_m: np.ndarray | None = None
        self._last_gripper = 1.0

    @property
    def done(self) -> bool:
        return self._phase_index >= len(self._phases) or self.truncated

    @property
    def truncated(self) -> bool:
        return self.truncate_after is not None and self._n_actions >= self.truncate_after

    @property
    def phase(self) -> str:
        return "done" if self.done else self._phases[self._phase_index].name

    def act(self, sim) -> np.ndarray:
        """The next ee_delta action (7,) float32 for `sim` (a TabletopSim) in its current state."""
        ee = sim.ee_pose()
        ee_pos_m, ee_mat = ee[:3] - sim.kitchen_origin_m, rotations.quat_xyzw_to_mat(ee[3:])
        if self.done:
            gripper = self._last_gripper if self.truncated else (0.0 if self._task.kind == "push" else 1.0)
            return self._action(np.zeros(3), np.zeros(3), gripper=gripper)
        self._n_actions += 1
        phase = self._phases[self._phase_index]
        self._last_gripper = phase.gripper
        goal_pos_m, goal_yaw_rad = self._waypoint(phase.name, sim, ee_pos_m)
        rot_err = rotations.mat_to_rotvec(rotations.top_down_mat(goal_yaw_rad) @ ee_mat.T)
        if phase.hold_steps:
            # Stand still while the gripper moves: correct orientation only, no translation noise.
            self._advance(phase, reached=self._steps_in_phase + 1 >= phase.hold_steps)
            return self._action(np.zeros(3), _clip_norm(rot_err, MAX_STEP_RAD), phase.gripper)
        pos_err = goal_pos_m - ee_pos_m
        step_pos = _clip_norm(pos_err, MAX_STEP_M)
        step_rot = _clip_norm(rot_err, MAX_STEP_RAD)
        # This step lands on the waypoint, or within a few mm (not worth a step of its own): move on at the
        # next step. Tracking error and noise are corrected by the next phase's closed loop.
        reached = (np.linalg.norm(pos_err) <= MAX_STEP_M + REACHED_SLACK_M
                   and np.linalg.norm(rot_err) <= MAX_STEP_RAD)
        if reached and phase.name == "lift" and not self._holding(sim, ee_pos_m):
            self._regrasp()
        else:
            self._advance(phase, reached)
        noise = self._rng.normal(0.0, self.noise_std, size=3) if self.noise_std > 0 else np.zeros(3)
        return self._action(step_pos + noise, step_rot, phase.gripper)

    def _grasp_above_m(self, sim) -> float:
        return GRASP_ABOVE_CUBE_CENTER_M + max(0.0, sim.arm_spec.finger_tip_below_ee_m - WIDOWX_TIP_BELOW_EE_M)

    def _waypoint(self, phase: str, sim, ee_pos_m: np.ndarray) -> tuple[np.ndarray, float]:
        """(goal ee point (3,) in the kitchen frame, goal gripper yaw) of a phase; hold phases keep the point."""
        task = self._task
        poses = sim.kitchen_poses()
        obj = poses[task.obj]
        if task.kind == "push":
            return self._push_waypoint(phase, sim, obj, ee_pos_m)
        grasp_above = self._grasp_above_m(sim)
        if phase in ("approach", "descend"):
            # Track the object until the fingers close (it may still settle or be nudged).
            self._grasp_yaw_rad = _face_aligned_yaw_rad(obj[3:])
            self._grasp_xy_m = obj[:2].copy()
            z = HOVER_Z_M if phase == "approach" else obj[2] + grasp_above
            return np.array([*obj[:2], z]), self._grasp_yaw_rad
        place_xy = task.place_xy(poses)
        yaw = self._grasp_yaw_rad
        if phase == "close":
            return ee_pos_m, yaw
        if phase == "lift":
            return np.array([*self._grasp_xy_m, CARRY_Z_M]), yaw
        if phase == "carry":
            return np.array([*place_xy, CARRY_Z_M]), yaw
        if phase in ("lower", "release"):
            z = task.rest_z_m() + RELEASE_DROP_M[task.relation] + grasp_above
            return (np.array([*place_xy, z]) if phase == "lower" else ee_pos_m), yaw
        return np.array([*ee_pos_m[:2], RETREAT_Z_M]), yaw  # retreat

    def _push_waypoint(self, phase: str, sim, obj: np.ndarray, ee_pos_m: np.ndarray) -> tuple[np.ndarray, float]:
        from robot_stack.sim.tasks import PUSH_LEFT_GOAL_Y_M, PUSH_RIGHT_GOAL_Y_M

        direction = self._task.push_dir
        low_z = sim.arm_spec.finger_tip_below_ee_m + PUSH_TIP_CLEARANCE_M
        if phase in ("approach", "descend"):
            self._grasp_xy_m = obj[:2].copy()  # push line: x of the object before contact
            behind = np.array([obj[0], obj[1] - direction * PUSH_BEHIND_M])
            return np.array([*behind, HOVER_Z_M if phase == "approach" else low_z]), 0.0
        if phase == "push":
            goal_y = (PUSH_LEFT_GOAL_Y_M if direction > 0 else PUSH_RIGHT_GOAL_Y_M) + direction * PUSH_OVERSHOOT_M
            return np.array([self._grasp_xy_m[0], goal_y - direction * PUSH_BEHIND_M, low_z]), 0.0
        return np.array([*ee_pos_m[:2], RETREAT_Z_M]), 0.0  # retreat

    def _holding(self, sim, ee_pos_m: np.ndarray) -> bool:
        """The object hangs between the pads: its centre sits just below the ee point (kitchen frame)."""
        obj_pos_m = sim.kitchen_poses()[self._task.obj][:3]
        offset = obj_pos_m - (ee_pos_m - np.array([0.0, 0.0, self._grasp_above_m(sim)]))
        return float(np.linalg.norm(offset)) < HELD_CUBE_TOLERANCE_M

    def _regrasp(self) -> None:
        """Missed grasp (noise, a cube that slipped): start over from the approach, a bounded number of times."""
        self._retries += 1
        self._phase_index = 0 if self._retries <= MAX_REGRASPS else self._phase_index + 1
        self._steps_in_phase = 0

    def _advance(self, phase: _Phase, reached: bool) -> None:
        self._steps_in_phase += 1
        if reached or self._steps_in_phase >= MAX_STEPS_PER_PHASE:
            self._phase_index += 1
            self._steps_in_phase = 0

    @staticmethod
    def _action(step_pos_m: np.ndarray, step_rot_rad: np.ndarray, gripper: float) -> np.ndarray:
        a = np.zeros(EE_DELTA_DIM, dtype=np.float32)
        a[:3] = step_pos_m
        a[3:6] = step_rot_rad
        a[GRIPPER_INDEX] = gripper
        return a


def _clip_norm(v: np.ndarray, max_norm: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v * (max_norm / n) if n > max_norm else v
