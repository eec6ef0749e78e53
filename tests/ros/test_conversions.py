"""Message conversions, tested by constructing messages directly (no spinning)."""

import numpy as np
import pytest

from robot_stack.arms.arm import ArmState
from robot_stack.ros import conversions as conv
from robot_stack.types import EE_DELTA_ACTION_NAMES


def test_image_round_trip_and_bytes_payload():
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = conv.image_to_msg(img, 1_700_000_000_123_456_789, "front_optical_frame")
    assert msg.encoding == "rgb8" and msg.step == 64 * 3
    np.testing.assert_array_equal(conv.msg_to_image(msg), img)
    assert conv.time_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789


def test_image_rejects_wrong_encoding_and_size():
    msg = conv.image_to_msg(np.zeros((4, 4, 3), np.uint8), 0, "f")
    msg.encoding = "bgr8"
    with pytest.raises(conv.MessageError, match="rgb8"):
        conv.msg_to_image(msg)
    msg.encoding, msg.height = "rgb8", 5
    with pytest.raises(conv.MessageError, match="bytes"):
        conv.msg_to_image(msg)
    with pytest.raises(conv.MessageError):
        conv.image_to_msg(np.zeros((4, 4), np.uint8), 0, "f")


def test_arm_state_round_trip_to_observation_state():
    st = ArmState(("waist", "shoulder"), np.array([0.1, -0.2]), np.array([0.3, 0.0, 0.2, 0, 0, 0, 1.0]), 0.7, 42)
    js, pose = conv.arm_state_msgs(st, "wx250s/base_link")
    np.testing.assert_allclose(conv.state_from_msgs(js, pose), st.state_vector(), rtol=1e-6)
    assert conv.time_to_ns(pose.header.stamp) == 42


def test_action_message_carries_names_stamp_and_source():
    msg = conv.action_to_msg(EE_DELTA_ACTION_NAMES, [0.01, 0, 0, 0, 0, 0, 1], 123, "policy:bc_conv@v2")
    names, values, stamp, source = conv.msg_to_action(msg)
    assert tuple(names) == EE_DELTA_ACTION_NAMES and values[0] == pytest.approx(0.01)
    assert stamp == 123 and source == "policy:bc_conv@v2"


def test_status_and_json_messages():
    d = conv.status_of(conv.status_msg("arm", "holding", "no command", 5, {"executed": 3}))
    assert d == {"status": "holding", "executed": "3", "reason": "no command"}
    assert conv.msg_json(conv.json_msg({"a": 1})) == {"a": 1}
    with pytest.raises(conv.MessageError):
        conv.msg_json(conv.String(data="not json"))


def test_camera_info_uses_calibrated_intrinsics_else_fov():
    k = [[600.0, 0, 319.5], [0, 610.0, 239.5], [0, 0, 1]]
    intr = {"K": k, "D": [0.1, -0.05, 0.001, 0.0, 0.0], "width": 640, "height": 480, "distortion_model": "plumb_bob"}
    info = conv.camera_info_msg(480, 640, 7, "front_optical_frame", fov_y_deg=45.0, intrinsics=intr)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), k)
    assert list(info.d) == pytest.approx(intr["D"])
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], k)  # calibrated wins over the FoV pinhole
    half = conv.camera_info_msg(240, 320, 7, "front", intrinsics=intr)  # same sensor, half resolution
    assert half.k[0] == pytest.approx(300.0) and half.k[4] == pytest.approx(305.0) and half.k[2] == pytest.approx(159.75)
    with pytest.raises(conv.MessageError, match="aspect ratio"):
        conv.camera_info_msg(480, 480, 7, "front", intrinsics=intr)
    sim = conv.camera_info_msg(128, 128, 7, "front", fov_y_deg=90.0)
    assert sim.k[0] == pytest.approx(64.0) and list(sim.d) == [0.0] * 5


def test_arm_state_reading():
    from robot_stack.ros.rig_client import ArmStateReading

    st = ArmState(("waist", "shoulder"), np.array([0.1, -0.2]), np.array([0.3, 0.0, 0.2, 0, 0, 0, 1.0]), 0.7, 42)
    r = ArmStateReading.from_msgs(*conv.arm_state_msgs(st, "base"))
    assert r.stamp_ns == 42 and r.arm_joints == (["waist", "shoulder"], [0.1, -0.2]) and r.ee_pose[:3] == (0.3, 0.0, 0.2)
