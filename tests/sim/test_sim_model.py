"""The WidowX 250s model matches the published Interbotix kinematics (joint names, axes, limits, offsets)."""

import mujoco
import numpy as np
import pytest

from robot_stack.sim import widowx_model as wm


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(wm.build_widowx_scene_xml(128))


def test_joint_names_axes_and_limits_match_interbotix(model):
    expected = {  # name: (axis, lower deg, upper deg) from wx250s.urdf.xacro
        "waist": ((0, 0, 1), -180, 180),
        "shoulder": ((0, 1, 0), -108, 114),
        "elbow": ((0, 1, 0), -123, 92),
        "forearm_roll": ((1, 0, 0), -180, 180),
        "wrist_angle": ((0, 1, 0), -100, 123),
        "wrist_rotate": ((1, 0, 0), -180, 180),
    }
    assert tuple(expected) == wm.ARM_JOINT_NAMES
    for name, (axis, lo_deg, hi_deg) in expected.items():
        j = model.joint(name)
        np.testing.assert_allclose(j.axis, axis)
        np.testing.assert_allclose(np.degrees(j.range), [lo_deg, hi_deg], atol=1e-3)
        assert model.actuator(name).trntype == mujoco.mjtTrn.mjTRN_JOINT


def test_gripper_fingers_travel_and_coupling(model):
    np.testing.assert_allclose(model.joint("left_finger").range, [0.015, 0.037])
    np.testing.assert_allclose(model.joint("right_finger").range, [-0.037, -0.015])
    d = mujoco.MjData(model)
    d.qpos[model.joint("left_finger").qposadr[0]] = 0.037
    d.qpos[model.joint("right_finger").qposadr[0]] = -0.037
    d.ctrl[model.actuator("gripper").id] = 0.015  # close
    mujoco.mj_step(model, d, nstep=250)
    left = d.qpos[model.joint("left_finger").qposadr[0]]
    right = d.qpos[model.joint("right_finger").qposadr[0]]
    assert left == pytest.approx(0.015, abs=1e-3)
    assert right == pytest.approx(-left, abs=1e-3)  # one motor, symmetric fingers


def test_zero_pose_ee_is_the_urdf_chain(model):
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    # x: 0.04975 + 0.175 + 0.075 + 0.065 + 0.043 + 0.023 + 0.027575; z: 0.072 + 0.03865 + 0.25
    np.testing.assert_allclose(d.site("ee_gripper").xpos, [0.458325, 0.0, 0.36065], atol=1e-6)


def test_arm_is_gravity_compensated_and_holds_still(model):
    for body in ("shoulder_link", "upper_arm_link", "upper_forearm_link", "lower_forearm_link", "wrist_link",
                 "gripper_link", "left_finger_link", "right_finger_link"):
        assert model.body_gravcomp[model.body(body).id] == 1.0
    d = mujoco.MjData(model)
    mujoco.mj_step(model, d, nstep=500)  # 1 s with zero targets = the zero pose
    arm_q = [d.joint(n).qpos[0] for n in wm.ARM_JOINT_NAMES]
    np.testing.assert_allclose(arm_q, 0.0, atol=2e-3)


def test_scene_has_objects_and_both_cameras(model):
    for cam in wm.CAMERA_NAMES:
        assert model.camera(cam).id >= 0
    assert model.body("bowl").mocapid[0] >= 0
    cube = model.geom("cube")
    np.testing.assert_allclose(cube.size, [0.015] * 3)  # >= 2.4 cm edge so the pads can hold it
    assert model.vis.quality.shadowsize == 0


def test_finger_tips_stay_above_the_table_at_the_workspace_floor(model):
    from robot_stack.sim.robots import get_arm_spec

    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    pad = model.geom("left_finger_pad")
    tip_x = d.geom("left_finger_pad").xpos[0] + pad.size[0]  # zero pose: the fingers point along +x
    assert d.site("ee_gripper").xpos[0] + wm.FINGER_TIP_BELOW_EE_M == pytest.approx(tip_x, abs=1e-6)
    assert get_arm_spec("widowx").workspace_min_m[2] - wm.FINGER_TIP_BELOW_EE_M > 0.0
