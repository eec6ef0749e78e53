"""rosbag2 of our own topics: exact round trip (sqlite3 + mcap), gap splitting, pairing, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fmt_data import EPISODE_STEPS, assert_same_episodes, fill_store
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import Stores, get_typestore

from robot_stack.store import TrajectoryStore
from robot_stack.store.formats import FormatError, export_store, import_into
from robot_stack.types import capture_ns_key

TS = get_typestore(Stores.ROS2_HUMBLE)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_is_exact(tmp_path, storage):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "ros2_bag", tmp_path / "bag", storage=storage)
    with Reader(out) as r:
        topics = {c.topic: c.msgtype for c in r.connections}
        assert topics == {
            "/wx250s/camera/front/image_raw": "sensor_msgs/msg/Image",
            "/wx250s/camera/wrist/image_raw": "sensor_msgs/msg/Image",
            "/wx250s/joint_states": "sensor_msgs/msg/JointState",
            "/wx250s/ee_pose": "geometry_msgs/msg/PoseStamped",
            "/wx250s/action_executed": "sensor_msgs/msg/JointState",
            "/wx250s/recorder/status": "std_msgs/msg/String"}
        act = [c for c in r.connections if c.topic.endswith("action_executed")]
        _, _, raw = next(r.messages(connections=act))
        msg = TS.deserialize_cdr(raw, "sensor_msgs/msg/JointState")
        assert msg.header.frame_id == "policy:bc_conv@v2" and list(msg.name)[-1] == "gripper"
        js = [c for c in r.connections if c.topic.endswith("joint_states")]
        _, _, raw = next(r.messages(connections=js))
        assert list(TS.deserialize_cdr(raw, "sensor_msgs/msg/JointState").name)[-1] == "gripper"
    new = import_into(tmp_path / "dst", "ros2_bag", out, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.to_json() == src.schema.to_json()
        assert_same_episodes(src, dst, new)
        assert dst.episode_meta(new[0]).notes == "first"
    src.close()


def _strip_status_and_custom_data(src_bag, dst_bag):
    """A bag as a plain `ros2 bag record` of the arm and cameras would leave it: no recorder, no custom data."""
    with Reader(src_bag) as r, Writer(dst_bag, version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=TS) for c in r.connections
                 if not c.topic.endswith("recorder/status")}
        for c, t, raw in r.messages():
            if c.id in conns:
                w.write(conns[c.id], t, raw)


def test_plain_recording_splits_on_gaps_and_pairs_by_stamp(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "ros2_bag", tmp_path / "bag")
    _strip_status_and_custom_data(out, tmp_path / "plain")
    new = import_into(tmp_path / "dst", "ros2_bag", tmp_path / "plain", task="cube task", fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        assert dst.schema.control_hz == 10.0 and dst.schema.robot == "wx250s"
        assert [len(dst.get_episode(j, keys=["action"])["action"]) for j in new] == list(EPISODE_STEPS)
        assert_same_episodes(src, dst, new, meta_fields=())
        m = [dst.episode_meta(j) for j in new]
        assert [(x.source, x.policy_version, x.task, x.success) for x in m] == [
            ("policy", "bc_conv@v2", "cube task", None), ("teleop", None, "cube task", None),
            ("sim", None, "cube task", None)]
    # A gap threshold above the 5 s between episodes merges them into one.
    merged = import_into(tmp_path / "dst1", "ros2_bag", tmp_path / "plain", gap_s=10.0, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst1") as dst:
        assert len(merged) == 1 and dst.n_steps == sum(EPISODE_STEPS)
    src.close()


def test_step_without_a_camera_frame_within_skew_is_dropped(tmp_path):
    src = fill_store(tmp_path / "src")
    ep = src.get_episode(0)
    src.close()
    out = export_store(TrajectoryStore.open(tmp_path / "src"), "ros2_bag", tmp_path / "bag")
    # Remove the wrist frame that answers step 3 of episode 0: neighbours are 100 ms away > max_skew_ms.
    missing_ns = int(ep[capture_ns_key("wrist")][3])
    with Reader(out) as r, Writer(tmp_path / "holed", version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=TS) for c in r.connections}
        for c, t, raw in r.messages():
            if c.topic.endswith("wrist/image_raw"):
                h = TS.deserialize_cdr(raw, c.msgtype).header.stamp
                if h.sec * 10**9 + h.nanosec == missing_ns:
                    continue
            w.write(conns[c.id], t, raw)
    new = import_into(tmp_path / "dst", "ros2_bag", tmp_path / "holed", max_skew_ms=50, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst") as dst:
        got = dst.get_episode(new[0])
        assert len(got["action"]) == EPISODE_STEPS[0] - 1
        np.testing.assert_array_equal(got["action"], np.delete(ep["action"], 3, axis=0))
    # With a skew wide enough, the first frame after the state is the next step's (106 ms later): the recorder's rule.
    new = import_into(tmp_path / "dst2", "ros2_bag", tmp_path / "holed", max_skew_ms=150, fsync=False)
    with TrajectoryStore.open(tmp_path / "dst2") as dst:
        got = dst.get_episode(new[0])
        assert len(got["action"]) == EPISODE_STEPS[0]
        assert got[capture_ns_key("wrist")][3] == ep[capture_ns_key("wrist")][4]


def test_bad_bags_name_the_fix(tmp_path):
    (tmp_path / "x.mcap").write_bytes(b"")
    with pytest.raises(FormatError, match="could not be opened as a rosbag2 bag"):
        import_into(tmp_path / "dst", "ros2_bag", tmp_path / "x.mcap")
    with Writer(tmp_path / "other", version=9) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=TS)
        w.write(c, 1, TS.serialize_cdr(TS.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
    with pytest.raises(FormatError, match="action_executed.*namespace="):
        import_into(tmp_path / "dst", "ros2_bag", tmp_path / "other")
    src = fill_store(tmp_path / "src")
    with pytest.raises(FormatError, match="storage 'rosbag1'"):
        export_store(src, "ros2_bag", tmp_path / "b2", storage="rosbag1")
    src.close()
    assert not (tmp_path / "dst").exists()


def test_status_json_carries_episode_meta(tmp_path):
    src = fill_store(tmp_path / "src")
    out = export_store(src, "ros2_bag", tmp_path / "bag", episodes=[1])
    with Reader(out) as r:
        st = [json.loads(TS.deserialize_cdr(raw, "std_msgs/msg/String").data)
              for c, _t, raw in r.messages() if c.topic.endswith("recorder/status")]
    assert [s["recording"] for s in st] == [True, False]
    assert st[1]["episode_meta"]["task"] == "take the cube out of the bowl" and st[1]["success"] is False
    src.close()


def test_export_refuses_features_without_a_topic(tmp_path):
    from fmt_data import fmt_schema

    from robot_stack.store import StoreSchema
    from robot_stack.types import FeatureSpec

    base = fmt_schema()
    schema = StoreSchema(robot=base.robot, control_hz=base.control_hz, action_space=base.action_space,
                         features={**base.features, "observation.depth.front": FeatureSpec("uint16", (32, 32))},
                         cameras=base.cameras)
    store = TrajectoryStore.create(tmp_path / "s", schema, fsync=False)
    data = {k: np.zeros((2, *spec.shape), dtype=spec.dtype) for k, spec in schema.features.items()}
    store.append_episode(data, {"task": "t", "source": "sim"})
    with pytest.raises(FormatError, match=r"\['observation.depth.front'\] have no topic.*lerobot_v3"):
        export_store(store, "ros2_bag", tmp_path / "bag")
    store.close()
