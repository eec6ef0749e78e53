"""Table-top tasks: initial-state distribution, ground-truth success and episode length, by name.

A task only knows object geometry (robot_stack.sim.widowx_model), never the MuJoCo state: the sim hands it
object positions, so success checks are testable on constructed states.

`put_cube_in_bowl` (forward) and `take_cube_out_of_bowl` (backward) are each other's reset, which is what
reset-free practice alternates between.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from robot_stack.registry import Registry
from robot_stack.sim.widowx_model import (
    BOWL_FLOOR_THICKNESS_M,
    BOWL_INNER_RADIUS_M,
    BOWL_OUTER_RADIUS_M,
    CUBE_HALF_SIZE_M,
)

# Nominal object positions (base frame, metres): both in comfortable top-down reach of the WidowX
# (x 0.25-0.40 m), far enough apart in y that a cube on the table never overlaps the bowl.
BOWL_NOMINAL_XY_M = (0.32, 0.10)
CUBE_NOMINAL_XY_M = (0.30, -0.10)
# Per-episode uniform jitter (+-), a few cm as in a person resetting the scene by hand.
OBJECT_JITTER_M = 0.03
CUBE_IN_BOWL_JITTER_M = 0.015
CUBE_YAW_JITTER_RAD = 0.5

CUBE_ON_TABLE_Z_M = CUBE_HALF_SIZE_M
CUBE_IN_BOWL_Z_M = BOWL_FLOOR_THICKNESS_M + CUBE_HALF_SIZE_M
# A cube "rests" at a height when its centre is within this of it (tilted on a wall edge still counts).
RESTING_TOLERANCE_M = 0.012
# Success margins: "in" = centre well inside the wall; "out" = the cube clears the wall with a margin.
IN_BOWL_MAX_RADIUS_M = BOWL_INNER_RADIUS_M - 0.5 * CUBE_HALF_SIZE_M
OUT_OF_BOWL_MIN_RADIUS_M = BOWL_OUTER_RADIUS_M + CUBE_HALF_SIZE_M + 0.01


@dataclass(frozen=True)
class Layout:
    """Object placement for one episode: cube centre (3,), cube yaw about z, bowl centre on the table (2,)."""

    cube_pos_m: np.ndarray
    cube_yaw_rad: float
    bowl_xy_m: np.ndarray


class Task(abc.ABC):
    name: str = ""
    language: str = ""
    max_steps: int = 60  # control steps (12 s at 5 Hz): the scripted expert needs ~35

    @abc.abstractmethod
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """Draw the initial object placement."""

    @abc.abstractmethod
    def is_success(self, cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
        """Ground truth from the cube centre (3,) and the bowl centre (2,)."""


TASKS: Registry[type[Task]] = Registry("sim task")


def get_task(name: str) -> Task:
    """A new instance of the registered task; an unknown name raises UnknownNameError listing the known ones."""
    return TASKS.get(name)()


def _jitter(rng: np.random.Generator, center, half_range_m: float) -> np.ndarray:
    return np.asarray(center, dtype=np.float64) + rng.uniform(-half_range_m, half_range_m, size=2)


def _radius_from_bowl_m(cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(cube_pos_m)[:2] - np.asarray(bowl_xy_m)[:2]))


def cube_in_bowl(cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
    """Cube centre inside the bowl wall and resting near the bowl floor (not held up in the air)."""
    return (_radius_from_bowl_m(cube_pos_m, bowl_xy_m) < IN_BOWL_MAX_RADIUS_M
            and abs(float(cube_pos_m[2]) - CUBE_IN_BOWL_Z_M) < RESTING_TOLERANCE_M)


def cube_on_table_outside_bowl(cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
    """Cube resting on the table, clear of the bowl wall by a margin."""
    return (_radius_from_bowl_m(cube_pos_m, bowl_xy_m) > OUT_OF_BOWL_MIN_RADIUS_M
            and abs(float(cube_pos_m[2]) - CUBE_ON_TABLE_Z_M) < RESTING_TOLERANCE_M)


@TASKS.register("put_cube_in_bowl")
class PutCubeInBowl(Task):
    name = "put_cube_in_bowl"
    language = "put the cube in the bowl"

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        bowl_xy = _jitter(rng, BOWL_NOMINAL_XY_M, OBJECT_JITTER_M)
        cube_xy = _jitter(rng, CUBE_NOMINAL_XY_M, OBJECT_JITTER_M)
        yaw = float(rng.uniform(-CUBE_YAW_JITTER_RAD, CUBE_YAW_JITTER_RAD))
        return Layout(np.array([*cube_xy, CUBE_ON_TABLE_Z_M]), yaw, bowl_xy)

    def is_success(self, cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
        return cube_in_bowl(cube_pos_m, bowl_xy_m)


@TASKS.register("take_cube_out_of_bowl")
class TakeCubeOutOfBowl(Task):
    name = "take_cube_out_of_bowl"
    language = "take the cube out of the bowl"

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        bowl_xy = _jitter(rng, BOWL_NOMINAL_XY_M, OBJECT_JITTER_M)
        cube_xy = _jitter(rng, bowl_xy, CUBE_IN_BOWL_JITTER_M)
        yaw = float(rng.uniform(-CUBE_YAW_JITTER_RAD, CUBE_YAW_JITTER_RAD))
        return Layout(np.array([*cube_xy, CUBE_IN_BOWL_Z_M]), yaw, bowl_xy)

    def is_success(self, cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
        return cube_on_table_outside_bowl(cube_pos_m, bowl_xy_m)
