"""ScriptedExpert: a waypoint state machine that solves the sim tasks with privileged object poses.

    approach (hover over cube, align yaw) ─► descend ─► close ─► lift ─► carry (hover over place point)
       ▲                                                     │ cube not in the gripper (<= 2 retries)
       └─────────────────────────────────────────────────────┘
        carry ─► lower ─► release ─► retreat ─► done (then holds still, gripper open)

Every action is an ee_delta toward the current phase's waypoint, clipped to the per-step limits
(2 cm and 0.1 rad per step at 5 Hz, what a person on a space mouse does), with optional Gaussian noise on
the translation so recorded demos cover recoveries. The gripper always points straight down (top-down
grasps) with its fingers aligned to the nearest cube face. It is closed-loop: each step re-reads the
measured ee pose, so noise is corrected on the next step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_stack.sim import rotations
from robot_stack.sim.tasks import CUBE_IN_BOWL_Z_M, CUBE_ON_TABLE_Z_M, get_task
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

MAX_STEP_M = 0.02
MAX_STEP_RAD = 0.1
REACHED_SLACK_M = 0.004
HOVER_Z_M = 0.08  # finger tips (15.6 mm below the ee point) clear the 3 cm bowl wall
CARRY_Z_M = 0.10  # a held cube's bottom (~19 mm below the ee point) clears the bowl wall
RETREAT_Z_M = 0.12
# ee point above the cube centre when grasping: the pads then reach to ~4 mm above the table.
GRASP_ABOVE_CUBE_CENTER_M = 0.004
# Height of the cube bottom above its resting surface when the gripper lets go.
RELEASE_DROP_M = {"put_cube_in_bowl": 0.012, "take_cube_out_of_bowl": 0.008}
# Where "out of the bowl" puts the cube: on the table this far from the bowl centre, towards -y (the
# put task's cube side, so the two tasks keep undoing each other inside the reachable area).
TAKE_OUT_OFFSET_Y_M = -0.17
GRIPPER_HOLD_STEPS = 2  # 0.4 s at 5 Hz: the fingers close or open fully (tau 0.1 s)
HELD_CUBE_TOLERANCE_M = 0.02
MAX_REGRASPS = 2
MAX_STEPS_PER_PHASE = 20  # a phase that cannot finish (blocked, unreachable) is given up, not looped


@dataclass(frozen=True)
class _Phase:
    name: str
    gripper: float  # commanded opening during the phase, 1 = open
    hold_steps: int = 0  # > 0: stand still this many steps (gripper actuation) instead of moving


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


def _put_place_xy(bowl_xy_m: np.ndarray) -> np.ndarray:
    return np.asarray(bowl_xy_m, dtype=np.float64)


def _take_place_xy(bowl_xy_m: np.ndarray) -> np.ndarray:
    return np.asarray(bowl_xy_m, dtype=np.float64) + np.array([0.0, TAKE_OUT_OFFSET_Y_M])


# Per task: where the cube goes (from the bowl centre) and the cube-centre height when it rests there.
_PLACE: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "put_cube_in_bowl": (_put_place_xy, CUBE_IN_BOWL_Z_M),
    "take_cube_out_of_bowl": (_take_place_xy, CUBE_ON_TABLE_Z_M),
}


class ScriptedExpert:
    """Solves `task` in a TabletopSim from privileged state; `act(sim)` once per control step."""

    def __init__(self, task: str, noise_std: float = 0.0, seed: int = 0):
        get_task(task)  # unknown names fail here with the list of registered tasks
        if task not in _PLACE:
            raise ValueError(f"no scripted expert for task {task!r}; scripted tasks: {', '.join(sorted(_PLACE))}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0 (metres per step), got {noise_std}")
        self.task = task
        self.noise_std = float(noise_std)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start the script from the first phase; a seed restarts the noise sequence."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._phase_index = 0
        self._steps_in_phase = 0
        self._retries = 0
        self._grasp_yaw_rad: float | None = None
        self._grasp_xy_m: np.ndarray | None = None

    @property
    def done(self) -> bool:
        return self._phase_index >= len(_PHASES)

    @property
    def phase(self) -> str:
        return "done" if self.done else _PHASES[self._phase_index].name

    def act(self, sim) -> np.ndarray:
        """The next ee_delta action (7,) float32 for `sim` (a TabletopSim) in its current state."""
        ee = sim.ee_pose()
        ee_pos_m, ee_mat = ee[:3], rotations.quat_xyzw_to_mat(ee[3:])
        if self.done:
            return self._action(np.zeros(3), np.zeros(3), gripper=1.0)
        phase = _PHASES[self._phase_index]
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

    def _waypoint(self, phase: str, sim, ee_pos_m: np.ndarray) -> tuple[np.ndarray, float]:
        """(goal ee point (3,), goal gripper yaw) of a phase; hold phases keep the current point."""
        objects = sim.object_poses()
        cube, bowl_xy = objects["cube"], objects["bowl"][:2]
        if phase in ("approach", "descend"):
            # Track the cube until the fingers close (it may still settle or be nudged).
            self._grasp_yaw_rad = _face_aligned_yaw_rad(cube[3:])
            self._grasp_xy_m = cube[:2].copy()
            z = HOVER_Z_M if phase == "approach" else cube[2] + GRASP_ABOVE_CUBE_CENTER_M
            return np.array([*cube[:2], z]), self._grasp_yaw_rad
        place_fn, rest_z_m = _PLACE[self.task]
        place_xy = place_fn(bowl_xy)
        yaw = self._grasp_yaw_rad
        if phase == "close":
            return ee_pos_m, yaw
        if phase == "lift":
            return np.array([*self._grasp_xy_m, CARRY_Z_M]), yaw
        if phase == "carry":
            return np.array([*place_xy, CARRY_Z_M]), yaw
        if phase in ("lower", "release"):
            z = rest_z_m + RELEASE_DROP_M[self.task] + GRASP_ABOVE_CUBE_CENTER_M
            return (np.array([*place_xy, z]) if phase == "lower" else ee_pos_m), yaw
        return np.array([*ee_pos_m[:2], RETREAT_Z_M]), yaw  # retreat

    @staticmethod
    def _holding(sim, ee_pos_m: np.ndarray) -> bool:
        """The cube hangs between the pads: its centre sits just below the ee point."""
        cube_pos_m = sim.object_poses()["cube"][:3]
        offset = cube_pos_m - (ee_pos_m - np.array([0.0, 0.0, GRASP_ABOVE_CUBE_CENTER_M]))
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
