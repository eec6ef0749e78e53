"""The toy-kitchen table: object geometry, where each object lives, and the MJCF of table, objects and lights.

Pure numpy (no MuJoCo import): tasks and tests read the geometry here without building a model.

Objects (all sizes in metres; positions in the *kitchen frame*, which is the WidowX base frame; an arm whose
base sits further from the objects adds `ArmSpec.kitchen_origin_xy_m`):

    cube   3 cm red wooden block, free joint. >= 2.4 cm: smaller cubes slip out of the WidowX pads.
    block  3 cm green block, free joint (a second graspable object, so instructions must be read).
    bowl   blue, 13.8 cm outer diameter, 3 cm wall (shallow: a top-down gripper reaches its floor).
    pot    grey, 17 cm outer diameter, 4.5 cm wall, two handles.
    plate  white disc, 15 cm diameter, 8 mm thick ("on" the plate, not "in").

Containers are mocap bodies: placed per episode, never pushed away by the gripper (as if heavy). Up to
`MAX_DISTRACTORS` static clutter items (a mug-like cylinder, a box) can be switched on by randomisation.

Home spots (kitchen frame), chosen inside the WidowX top-down reach annulus (~0.15-0.42 m from the base,
measured by IK in tests/sim/test_sim_tasks.py) with >= 2 cm between footprints after jitter:

             +y (robot's left)
       pot (0.19, 0.26)        bowl (0.32, 0.10)
                  block (0.20, 0.02)        [arm base at 0, 0]  ->  +x away from the robot
       plate (0.19, -0.26)     cube (0.30, -0.10)

The cube and bowl keep the spots of the original two-task scene, so put_cube_in_bowl / take_cube_out_of_bowl
behave as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CUBE_HALF_SIZE_M = 0.015
CUBE_MASS_KG = 0.02
CUBE_FRICTION = (1.5, 0.02, 0.0002)  # sliding, torsional, rolling: high so two pads hold it

BOWL_RADIUS_M = 0.065  # wall centre line
BOWL_WALL_HALF_THICKNESS_M = 0.004
BOWL_WALL_HEIGHT_M = 0.03
BOWL_FLOOR_THICKNESS_M = 0.006
BOWL_N_WALL_SEGMENTS = 16
BOWL_INNER_RADIUS_M = BOWL_RADIUS_M - BOWL_WALL_HALF_THICKNESS_M
BOWL_OUTER_RADIUS_M = BOWL_RADIUS_M + BOWL_WALL_HALF_THICKNESS_M

POT_RADIUS_M = 0.08
POT_WALL_HALF_THICKNESS_M = 0.005
# 4.5 cm wall: a carried cube (bottom ~19 mm below the ee point at 10 cm carry height) clears it.
POT_WALL_HEIGHT_M = 0.045
POT_FLOOR_THICKNESS_M = 0.006
POT_N_WALL_SEGMENTS = 20
POT_INNER_RADIUS_M = POT_RADIUS_M - POT_WALL_HALF_THICKNESS_M
POT_OUTER_RADIUS_M = POT_RADIUS_M + POT_WALL_HALF_THICKNESS_M
POT_HANDLE_LENGTH_M = 0.03

PLATE_RADIUS_M = 0.075
PLATE_THICKNESS_M = 0.008

TABLE_HALF_SIZE_M = (0.6, 1.0, 0.02)
TABLE_CENTER_X_M = 0.25  # kitchen frame

GRASPABLE: tuple[str, ...] = ("cube", "block")
CONTAINERS: tuple[str, ...] = ("bowl", "pot", "plate")
OBJECT_NAMES: tuple[str, ...] = GRASPABLE + CONTAINERS
MAX_DISTRACTORS = 2

# Language names (what an instruction calls the object).
OBJECT_WORDS = {"cube": "cube", "block": "green block", "bowl": "bowl", "pot": "pot", "plate": "plate"}

HOME_XY_M: dict[str, tuple[float, float]] = {
    "cube": (0.30, -0.10),
    "block": (0.20, 0.02),
    "bowl": (0.32, 0.10),
    "pot": (0.19, 0.26),
    "plate": (0.19, -0.26),
}
# Footprint radius (m) of each object on the table, for clearance checks.
FOOTPRINT_RADIUS_M = {
    "cube": CUBE_HALF_SIZE_M * np.sqrt(2), "block": CUBE_HALF_SIZE_M * np.sqrt(2),
    "bowl": BOWL_OUTER_RADIUS_M, "pot": POT_OUTER_RADIUS_M + POT_HANDLE_LENGTH_M, "plate": PLATE_RADIUS_M,
}
# Where distractors may stand (kitchen frame): outside every home footprint, still in the camera view.
DISTRACTOR_SPOTS_XY_M: tuple[tuple[float, float], ...] = ((0.45, 0.22), (0.45, -0.24), (0.08, 0.30), (0.08, -0.30))
DISTRACTOR_PARK_Z_M = -1.0  # below the table, out of every view: distractor switched off

# Default colours (RGBA); randomisation perturbs these.
RGBA = {
    "cube": (0.85, 0.15, 0.1, 1.0), "block": (0.15, 0.7, 0.2, 1.0), "bowl": (0.2, 0.45, 0.85, 1.0),
    "pot": (0.45, 0.45, 0.48, 1.0), "plate": (0.93, 0.93, 0.9, 1.0), "table": (0.72, 0.6, 0.45, 1.0),
}


def container_floor_z_m(container: str) -> float:
    """Height (m) of the surface an object rests on inside/on a container."""
    return {"bowl": BOWL_FLOOR_THICKNESS_M, "pot": POT_FLOOR_THICKNESS_M, "plate": PLATE_THICKNESS_M}[container]


def container_inner_radius_m(container: str) -> float:
    return {"bowl": BOWL_INNER_RADIUS_M, "pot": POT_INNER_RADIUS_M, "plate": PLATE_RADIUS_M}[container]


def container_outer_radius_m(container: str) -> float:
    return {"bowl": BOWL_OUTER_RADIUS_M, "pot": POT_OUTER_RADIUS_M, "plate": PLATE_RADIUS_M}[container]


@dataclass(frozen=True)
class Layout:
    """Object placement for one episode, kitchen frame: name -> (x, y, z, yaw) for graspables, (x, y) for containers.

    `cube_pos_m`, `cube_yaw_rad`, `bowl_xy_m` keep the original two-object API.
    """

    poses: dict[str, np.ndarray]

    @property
    def cube_pos_m(self) -> np.ndarray:
        return self.poses["cube"][:3]

    @property
    def cube_yaw_rad(self) -> float:
        return float(self.poses["cube"][3])

    @property
    def bowl_xy_m(self) -> np.ndarray:
        return self.poses["bowl"][:2]


def mjcf_floats(values) -> str:
    """Space-separated floats for an MJCF attribute (shared by the scene and both arm models)."""
    return " ".join(f"{float(v):.6g}" for v in values)


def camera_xyaxes(pos, lookat, up) -> str:
    """MJCF `xyaxes` of a camera at `pos` looking at `lookat` with image-up near `up` (parent frame)."""
    forward = np.asarray(lookat, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, float))
    right /= np.linalg.norm(right)
    return mjcf_floats(np.concatenate([right, np.cross(right, forward)]))


def _ring_walls_xml(cls: str, radius_m: float, half_thickness_m: float, height_m: float, n: int) -> str:
    # Tangential half length slightly longer than the polygon side so neighbouring boxes overlap (no gaps).
    half_len_m = (radius_m + half_thickness_m) * np.tan(np.pi / n) + 0.001
    walls = []
    for i in range(n):
        a = 2 * np.pi * i / n
        walls.append(
            f'<geom class="{cls}" type="box" size="{mjcf_floats([half_thickness_m, half_len_m, height_m / 2])}" '
            f'pos="{mjcf_floats([radius_m * np.cos(a), radius_m * np.sin(a), height_m / 2])}" euler="0 0 {a:.6g}"/>')
    return "\n      ".join(walls)


def objects_default_xml() -> str:
    """<default> classes of the kitchen objects."""
    return f"""
    <default class="bowl">
      <geom contype="1" conaffinity="1" rgba="{mjcf_floats(RGBA['bowl'])}" friction="0.8 0.01 0.0001"/>
    </default>
    <default class="pot">
      <geom contype="1" conaffinity="1" rgba="{mjcf_floats(RGBA['pot'])}" friction="0.8 0.01 0.0001"/>
    </default>
    <default class="plate">
      <geom contype="1" conaffinity="1" rgba="{mjcf_floats(RGBA['plate'])}" friction="0.8 0.01 0.0001"/>
    </default>
    <default class="distractor">
      <geom contype="1" conaffinity="1" friction="0.8 0.01 0.0001"/>
    </default>"""


def table_and_objects_xml(origin_xy_m=(0.0, 0.0)) -> str:
    """Worldbody MJCF: table (+ visual room walls), key light, the five kitchen objects and distractors."""
    ox, oy = (float(v) for v in origin_xy_m)
    tx = TABLE_CENTER_X_M + ox
    h = CUBE_HALF_SIZE_M
    free = []
    for name in GRASPABLE:
        x, y = HOME_XY_M[name]
        free.append(f"""
    <body name="{name}" pos="{mjcf_floats([x + ox, y + oy, h])}">
      <freejoint name="{name}"/>
      <geom name="{name}" type="box" size="{mjcf_floats([h] * 3)}" mass="{CUBE_MASS_KG}" rgba="{mjcf_floats(RGBA[name])}"
            condim="4" friction="{mjcf_floats(CUBE_FRICTION)}" solref="0.004 1"/>
    </body>""")
    bx, by = HOME_XY_M["bowl"]
    px, py = HOME_XY_M["pot"]
    lx, ly = HOME_XY_M["plate"]
    handle_x = POT_OUTER_RADIUS_M + POT_HANDLE_LENGTH_M / 2
    distractors = "".join(f"""
    <body name="distractor{i}" mocap="true" pos="0 0 {DISTRACTOR_PARK_Z_M}">
      <geom name="distractor{i}" class="distractor" type="{'cylinder' if i == 0 else 'box'}"
            size="{'0.03 0.04' if i == 0 else '0.025 0.04 0.02'}" pos="0 0 {0.04 if i == 0 else 0.02}"
            rgba="{'0.9 0.8 0.2 1' if i == 0 else '0.6 0.3 0.7 1'}"/>
    </body>""" for i in range(MAX_DISTRACTORS))
    return f"""
    <light name="key" pos="{mjcf_floats([0.3 + ox, -0.3 + oy, 1.2])}" dir="0 0.25 -1" directional="true" castshadow="false"
           diffuse="0.6 0.6 0.6"/>
    <geom name="table" type="box" size="{mjcf_floats(TABLE_HALF_SIZE_M)}" pos="{mjcf_floats([tx, oy, -TABLE_HALF_SIZE_M[2]])}"
          rgba="{mjcf_floats(RGBA['table'])}" friction="0.8 0.01 0.0001"/>
    <!-- walls (visual only) behind and beside the table: the third-person view sees a room, not a void -->
    <geom name="back_wall" type="box" size="0.01 2.0 1.0" pos="{mjcf_floats([tx - TABLE_HALF_SIZE_M[0], oy, 0.4])}"
          rgba="0.82 0.84 0.86 1" contype="0" conaffinity="0"/>
    <geom name="side_wall" type="box" size="2.0 0.01 1.0" pos="{mjcf_floats([tx, oy + TABLE_HALF_SIZE_M[1], 0.4])}"
          rgba="0.78 0.8 0.82 1" contype="0" conaffinity="0"/>
    {''.join(free)}
    <!-- mocap: containers are placed per episode but never move (the gripper cannot push them away) -->
    <body name="bowl" mocap="true" pos="{mjcf_floats([bx + ox, by + oy, 0])}">
      <geom name="bowl_floor" class="bowl" type="cylinder" size="{BOWL_OUTER_RADIUS_M} {BOWL_FLOOR_THICKNESS_M / 2}"
            pos="0 0 {BOWL_FLOOR_THICKNESS_M / 2}"/>
      {_ring_walls_xml("bowl", BOWL_RADIUS_M, BOWL_WALL_HALF_THICKNESS_M, BOWL_WALL_HEIGHT_M, BOWL_N_WALL_SEGMENTS)}
    </body>
    <body name="pot" mocap="true" pos="{mjcf_floats([px + ox, py + oy, 0])}">
      <geom name="pot_floor" class="pot" type="cylinder" size="{POT_OUTER_RADIUS_M} {POT_FLOOR_THICKNESS_M / 2}"
            pos="0 0 {POT_FLOOR_THICKNESS_M / 2}"/>
      {_ring_walls_xml("pot", POT_RADIUS_M, POT_WALL_HALF_THICKNESS_M, POT_WALL_HEIGHT_M, POT_N_WALL_SEGMENTS)}
      <geom class="pot" type="box" size="{mjcf_floats([POT_HANDLE_LENGTH_M / 2, 0.012, 0.004])}"
            pos="{mjcf_floats([handle_x, 0, POT_WALL_HEIGHT_M - 0.006])}" rgba="0.15 0.15 0.15 1"/>
      <geom class="pot" type="box" size="{mjcf_floats([POT_HANDLE_LENGTH_M / 2, 0.012, 0.004])}"
            pos="{mjcf_floats([-handle_x, 0, POT_WALL_HEIGHT_M - 0.006])}" rgba="0.15 0.15 0.15 1"/>
    </body>
    <body name="plate" mocap="true" pos="{mjcf_floats([lx + ox, ly + oy, 0])}">
      <geom name="plate" class="plate" type="cylinder" size="{PLATE_RADIUS_M} {PLATE_THICKNESS_M / 2}"
            pos="0 0 {PLATE_THICKNESS_M / 2}"/>
    </body>
    {distractors}"""
