"""The two simulated arms as data: which joints, servos and gripper a TabletopSim drives, and where.

    ArmSpec ──► TabletopSim (one code path for both arms: DLS IK over `n_joints`, servo ramp, gripper map)

Adding an arm = one ArmSpec + one scene builder; nothing in env.py, the tasks or the expert branches on names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_stack.registry import Registry


@dataclass(frozen=True)
class ArmSpec:
    name: str
    robot: str  # rig.robot / the base frame prefix
    build_xml: Callable[[int], str]  # image_size_px -> MJCF
    joint_names: tuple[str, ...]
    actuator_names: tuple[str, ...]
    ee_site: str
    # Gripper: position actuator `gripper_actuator`; ctrl = ctrl_closed + g * (ctrl_open - ctrl_closed) for g in [0,1].
    gripper_actuator: str
    gripper_ctrl_open: float
    gripper_ctrl_closed: float
    # Measured opening: joint `gripper_joint` mapped linearly from q_closed..q_open to 0..1.
    gripper_joint: str
    gripper_q_open: float
    gripper_q_closed: float
    # Extra joints set at reset so the fingers start open: (joint name, qpos).
    gripper_reset_qpos: tuple[tuple[str, float], ...]
    max_joint_speed_rad_s: tuple[float, ...]
    home_ik_seed_rad: tuple[float, ...]
    # The kitchen frame (robot_stack.sim.kitchen) in this arm's base frame: the Panda reaches further.
    kitchen_origin_xy_m: tuple[float, float]
    workspace_min_m: tuple[float, float, float]
    workspace_max_m: tuple[float, float, float]
    finger_tip_below_ee_m: float
    camera_names: tuple[str, ...] = ("front", "wrist")

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)


ARM_SPECS: Registry[Callable[[], ArmSpec]] = Registry("sim arm")


@ARM_SPECS.register("widowx")
def widowx_spec() -> ArmSpec:
    from robot_stack.sim import widowx_model as wm

    return ArmSpec(
        name="widowx", robot="wx250s", build_xml=wm.build_widowx_scene_xml,
        joint_names=wm.ARM_JOINT_NAMES, actuator_names=wm.ARM_JOINT_NAMES, ee_site="ee_gripper",
        gripper_actuator="gripper", gripper_ctrl_open=wm.FINGER_OPEN_M, gripper_ctrl_closed=wm.FINGER_CLOSED_M,
        gripper_joint="left_finger", gripper_q_open=wm.FINGER_OPEN_M, gripper_q_closed=wm.FINGER_CLOSED_M,
        gripper_reset_qpos=(("left_finger", wm.FINGER_OPEN_M), ("right_finger", -wm.FINGER_OPEN_M)),
        # URDF <limit velocity> of every wx250s joint.
        max_joint_speed_rad_s=(np.pi,) * 6,
        home_ik_seed_rad=(0.0, 0.0, 0.5, 0.0, 1.0, 0.0),
        kitchen_origin_xy_m=(0.0, 0.0),
        # z min keeps the finger tips (15.6 mm below the ee point) just above the table.
        workspace_min_m=(0.10, -0.35, 0.017), workspace_max_m=(0.50, 0.35, 0.40),
        finger_tip_below_ee_m=wm.FINGER_TIP_BELOW_EE_M,
    )


@ARM_SPECS.register("panda")
def panda_spec() -> ArmSpec:
    from functools import partial

    from robot_stack.sim import panda_model as pm

    origin = (0.25, 0.0)
    return ArmSpec(
        name="panda", robot="panda", build_xml=partial(pm.build_panda_scene_xml, kitchen_origin_xy_m=origin),
        joint_names=pm.ARM_JOINT_NAMES, actuator_names=pm.ARM_ACTUATOR_NAMES, ee_site="ee",
        gripper_actuator="fingers_actuator", gripper_ctrl_open=0.0, gripper_ctrl_closed=pm.GRIPPER_CTRL_CLOSED,
        gripper_joint=pm.GRIPPER_DRIVER_JOINT, gripper_q_open=0.0, gripper_q_closed=pm.GRIPPER_DRIVER_CLOSED_RAD,
        gripper_reset_qpos=(),
        max_joint_speed_rad_s=pm.MAX_JOINT_SPEED_RAD_S,
        home_ik_seed_rad=pm.READY_Q_RAD,
        kitchen_origin_xy_m=origin,
        # Panda reach is ~0.85 m; the box covers the kitchen (x 0.33-0.72 in this frame) with margin.
        workspace_min_m=(0.25, -0.45, 0.022), workspace_max_m=(0.85, 0.45, 0.50),
        finger_tip_below_ee_m=pm.FINGER_TIP_BELOW_EE_M,
    )


def get_arm_spec(name: str) -> ArmSpec:
    return ARM_SPECS.get(name)()
