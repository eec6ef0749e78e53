"""Language-instructed kitchen tasks: initial-state distribution, ground-truth success, expert plan, by name.

A task only knows object geometry (robot_stack.sim.kitchen), never the MuJoCo state: the sim hands it object
poses in the kitchen frame, so success checks are testable on constructed states.

Task set (the same for both arms; the kitchen frame moves with the arm, see ArmSpec.kitchen_origin_xy_m):

    forward                      backward (its reset)            PTR / RoboFuME role
    put_cube_in_bowl         <-> take_cube_out_of_bowl           prior data, reset-free pair
    put_block_in_pot         <-> take_block_out_of_pot           prior data, reset-free pair
    put_cube_on_plate        <-> take_cube_off_plate             prior data, reset-free pair
    push_cube_left           <-> push_cube_right                 prior data, reset-free pair
    put_block_in_bowl                                            HELD OUT: "new task from 10 demos"
    put_block_on_plate                                           HELD OUT

Held-out tasks recombine objects and containers seen in prior data (PTR's target-task setting), and are
never written by the prior-data generator unless asked by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robot_stack.registry import Registry
from robot_stack.sim import kitchen as k
from robot_stack.sim.kitchen import (  # noqa: F401  (re-exported: the original two-task API)
    BOWL_FLOOR_THICKNESS_M,
    BOWL_INNER_RADIUS_M,
    BOWL_OUTER_RADIUS_M,
    CUBE_HALF_SIZE_M,
    Layout,
)

# Nominal object positions of the original two-task scene (kitchen frame = WidowX base frame, metres).
BOWL_NOMINAL_XY_M = k.HOME_XY_M["bowl"]
CUBE_NOMINAL_XY_M = k.HOME_XY_M["cube"]
# Per-episode uniform jitter (+-), a few cm as in a person resetting the scene by hand.
OBJECT_JITTER_M = 0.03
OTHER_OBJECT_JITTER_M = 0.01  # objects the task does not involve barely move
CUBE_IN_BOWL_JITTER_M = 0.015
CUBE_YAW_JITTER_RAD = 0.5
# Footprints of different objects keep at least this gap (resampled otherwise).
MIN_CLEARANCE_M = 0.01

CUBE_ON_TABLE_Z_M = CUBE_HALF_SIZE_M
CUBE_IN_BOWL_Z_M = BOWL_FLOOR_THICKNESS_M + CUBE_HALF_SIZE_M
# An object "rests" at a height when its centre is within this of it (tilted on a wall edge still counts).
RESTING_TOLERANCE_M = 0.012
# Success margins: "in" = centre well inside the wall; "out" = the object clears the wall with a margin.
IN_BOWL_MAX_RADIUS_M = BOWL_INNER_RADIUS_M - 0.5 * CUBE_HALF_SIZE_M
OUT_OF_BOWL_MIN_RADIUS_M = BOWL_OUTER_RADIUS_M + CUBE_HALF_SIZE_M + 0.01
OUT_MARGIN_M = 0.01
ON_PLATE_EDGE_MARGIN_M = 0.01

# Push lane (kitchen frame): the cube slides along y at x = PUSH_X_M, clear of the bowl and the plate.
PUSH_X_M = 0.30
PUSH_LEFT_START_Y_M = -0.17
PUSH_RIGHT_START_Y_M = -0.05
PUSH_START_JITTER_M = 0.01
PUSH_LEFT_GOAL_Y_M = -0.08  # push left succeeds with the cube centre at y >= this
PUSH_RIGHT_GOAL_Y_M = -0.13  # push right succeeds with the cube centre at y <= this

HELD_OUT_TASKS: tuple[str, ...] = ("put_block_in_bowl", "put_block_on_plate")


def _radius_m(obj_pos_m, container_xy_m) -> float:
    return float(np.linalg.norm(np.asarray(obj_pos_m)[:2] - np.asarray(container_xy_m)[:2]))


def _rests_at(obj_pos_m, z_m: float) -> bool:
    return abs(float(obj_pos_m[2]) - z_m) < RESTING_TOLERANCE_M


def object_in(obj_pos_m, container: str, container_xy_m) -> bool:
    """Object centre well inside the container (on the plate's top) and resting on its floor (not held up)."""
    if container == "plate":
        max_r = k.PLATE_RADIUS_M - ON_PLATE_EDGE_MARGIN_M
    else:
        max_r = k.container_inner_radius_m(container) - 0.5 * CUBE_HALF_SIZE_M
    return (_radius_m(obj_pos_m, container_xy_m) < max_r
            and _rests_at(obj_pos_m, k.container_floor_z_m(container) + CUBE_HALF_SIZE_M))


def object_out_on_table(obj_pos_m, container: str, container_xy_m) -> bool:
    """Object resting on the table, clear of the container's rim by a margin."""
    min_r = k.container_outer_radius_m(container) + CUBE_HALF_SIZE_M + OUT_MARGIN_M
    return _radius_m(obj_pos_m, container_xy_m) > min_r and _rests_at(obj_pos_m, CUBE_ON_TABLE_Z_M)


def cube_in_bowl(cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
    """Cube centre inside the bowl wall and resting near the bowl floor (not held up in the air)."""
    return object_in(cube_pos_m, "bowl", bowl_xy_m)


def cube_on_table_outside_bowl(cube_pos_m: np.ndarray, bowl_xy_m: np.ndarray) -> bool:
    """Cube resting on the table, clear of the bowl wall by a margin."""
    return object_out_on_table(cube_pos_m, "bowl", bowl_xy_m)


@dataclass(frozen=True)
class Task:
    """One instruction. kind: "pick_place" (grasp `obj`, put it at `place_xy`) or "push" (slide `obj` along y).

    `relation` is "in" (into/onto `container`) or "out" (from `container` back to the table).
    """

    name: str
    language: str
    kind: str
    obj: str
    container: str | None = None
    relation: str | None = None
    push_dir: float = 0.0  # +1 = push to +y (the robot's left), -1 = to -y
    phase: str = "forward"
    reverse: str | None = None  # the task that undoes this one (reset-free pairs)
    held_out: bool = False
    max_steps: int = 60  # control steps (12 s at 5 Hz): the scripted expert needs ~25-45

    # ---------------------------------------------------------------- initial states
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """Draw the initial placement of every kitchen object (kitchen frame); involved objects jitter more."""
        for _ in range(100):
            layout = self._draw(rng)
            if layout_clearances_ok(layout, exempt=self._nested_pair()):
                return layout
        raise RuntimeError(f"task {self.name}: could not place the objects without overlap in 100 draws")

    def _nested_pair(self) -> tuple[str, str] | None:
        return (self.obj, self.container) if self.kind == "pick_place" and self.relation == "out" else None

    def _draw(self, rng: np.random.Generator) -> Layout:
        poses: dict[str, np.ndarray] = {}
        # Draw order for the original two tasks (bowl, cube, yaw) is kept so their episodes stay comparable.
        container = self.container if self.kind == "pick_place" else None
        first = [container] if container else []
        for name in first + [n for n in k.CONTAINERS if n != container]:
            jitter = OBJECT_JITTER_M if name == container else OTHER_OBJECT_JITTER_M
            poses[name] = _jitter(rng, k.HOME_XY_M[name], jitter)
        for name in k.GRASPABLE:
            z = CUBE_ON_TABLE_Z_M
            if name != self.obj:
                xy = _jitter(rng, k.HOME_XY_M[name], OTHER_OBJECT_JITTER_M)
            elif self.kind == "push":
                start_y = PUSH_LEFT_START_Y_M if self.push_dir > 0 else PUSH_RIGHT_START_Y_M
                xy = _jitter(rng, (PUSH_X_M, start_y), PUSH_START_JITTER_M)
            elif self.relation == "out":
                xy = _jitter(rng, poses[self.container], CUBE_IN_BOWL_JITTER_M)
                z = k.container_floor_z_m(self.container) + CUBE_HALF_SIZE_M
            else:
                xy = _jitter(rng, k.HOME_XY_M[name], OBJECT_JITTER_M)
            yaw = float(rng.uniform(-CUBE_YAW_JITTER_RAD, CUBE_YAW_JITTER_RAD))
            poses[name] = np.array([*xy, z, yaw])
        return Layout(poses)

    # ---------------------------------------------------------------- success
    def is_success(self, poses: Mapping[str, np.ndarray], bowl_xy_m=None) -> bool:
        """Ground truth from object poses in the kitchen frame: name -> (>= 3,) position (containers: >= 2,).

        The original signature `is_success(cube_pos_m, bowl_xy_m)` still works for cube/bowl tasks.
        """
        if bowl_xy_m is not None:
            poses = {"cube": np.asarray(poses), "bowl": np.asarray(bowl_xy_m)}
        obj = np.asarray(poses[self.obj])
        if self.kind == "push":
            y = float(obj[1])
            on_table = _rests_at(obj, CUBE_ON_TABLE_Z_M)
            return on_table and (y >= PUSH_LEFT_GOAL_Y_M if self.push_dir > 0 else y <= PUSH_RIGHT_GOAL_Y_M)
        container_xy = np.asarray(poses[self.container])[:2]
        if self.relation == "in":
            return object_in(obj, self.container, container_xy)
        return object_out_on_table(obj, self.container, container_xy)

    # ---------------------------------------------------------------- expert plan
    def place_xy(self, poses: Mapping[str, np.ndarray]) -> np.ndarray:
        """(2,) kitchen-frame point where a pick-and-place expert sets the object down."""
        container_xy = np.asarray(poses[self.container], dtype=np.float64)[:2]
        if self.relation == "in":
            return container_xy
        if self.container == "bowl":
            # The original take-out point: 17 cm towards -y (the put task's cube side).
            return container_xy + np.array([0.0, -0.17])
        return np.asarray(k.HOME_XY_M[self.obj], dtype=np.float64)  # back where the object lives

    def rest_z_m(self) -> float:
        """Object-centre height when it rests at the place point."""
        if self.relation == "in":
            return k.container_floor_z_m(self.container) + CUBE_HALF_SIZE_M
        return CUBE_ON_TABLE_Z_M


TASKS: Registry[type] = Registry("sim task")


def _register(task: Task) -> None:
    TASKS.register(task.name)(lambda: task)


def get_task(name: str) -> Task:
    """The registered task; an unknown name raises UnknownNameError listing the known ones."""
    return TASKS.get(name)()


def all_tasks() -> list[Task]:
    return [get_task(n) for n in TASKS.names()]


def prior_tasks() -> list[str]:
    """Task names used for prior data: everything except the held-out set."""
    return [n for n in TASKS.names() if n not in HELD_OUT_TASKS]


def _jitter(rng: np.random.Generator, center, half_range_m: float) -> np.ndarray:
    return np.asarray(center, dtype=np.float64)[:2] + rng.uniform(-half_range_m, half_range_m, size=2)


def layout_clearances_ok(layout: Layout, exempt: tuple[str, str] | None = None) -> bool:
    """Every pair of object footprints is >= MIN_CLEARANCE_M apart (an object nested in a container exempt)."""
    names = list(layout.poses)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if exempt is not None and {a, b} == set(exempt):
                continue
            gap = (np.linalg.norm(layout.poses[a][:2] - layout.poses[b][:2])
                   - k.FOOTPRINT_RADIUS_M[a] - k.FOOTPRINT_RADIUS_M[b])
            if gap < MIN_CLEARANCE_M:
                return False
    return True


def _pair(obj: str, container: str, fw: str, bw: str, put_words: str, take_words: str) -> None:
    o, c = k.OBJECT_WORDS[obj], k.OBJECT_WORDS[container]
    _register(Task(fw, f"put the {o} {put_words} the {c}", "pick_place", obj, container, "in",
                   phase="forward", reverse=bw))
    _register(Task(bw, f"take the {o} {take_words} the {c}", "pick_place", obj, container, "out",
                   phase="backward", reverse=fw))


_pair("cube", "bowl", "put_cube_in_bowl", "take_cube_out_of_bowl", "in", "out of")
_pair("block", "pot", "put_block_in_pot", "take_block_out_of_pot", "in", "out of")
_pair("cube", "plate", "put_cube_on_plate", "take_cube_off_plate", "on", "off")
_register(Task("push_cube_left", "push the cube to the left", "push", "cube", push_dir=1.0,
               phase="forward", reverse="push_cube_right", max_steps=40))
_register(Task("push_cube_right", "push the cube to the right", "push", "cube", push_dir=-1.0,
               phase="backward", reverse="push_cube_left", max_steps=40))
_register(Task("put_block_in_bowl", "put the green block in the bowl", "pick_place", "block", "bowl", "in",
               held_out=True))
_register(Task("put_block_on_plate", "put the green block on the plate", "pick_place", "block", "plate", "in",
               held_out=True))
