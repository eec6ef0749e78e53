"""rosbag2 (sqlite3 or mcap) of our own topics <-> episodes (DESIGN.md §3 "ROS 2 interface").

Pure Python via `rosbags` (its own typestore and CDR serializer): no rclpy, no *_msgs import here.

Topics written and read, per robot namespace <ns> (default "/<robot>"):

    <ns>/camera/<cam>/image_raw  sensor_msgs/Image rgb8, stamp = capture ns, bag time = receive ns
    <ns>/joint_states            sensor_msgs/JointState: joints + a "gripper" joint (opening in [0, 1])
    <ns>/ee_pose                 geometry_msgs/PoseStamped (xyz + quat xyzw), same stamp as joint_states
    <ns>/action_executed         sensor_msgs/JointState: name = action dims, position = values, stamp = the
                                 state stamp the action answers, frame_id = source tag ("policy:bc_conv@v2")
    <ns>/recorder/status         std_msgs/String JSON: {"recording": true|false, ...} at each episode start
                                 and end; our export adds "episode_meta" (EpisodeMeta JSON) to the end message
    metadata.yaml custom_data    "robot_stack": our StoreSchema + episode metadata (JSON)

Import: episodes are the recorder/status "recording" intervals when that topic is there (use_status=True;
actions outside an interval were not recorded live either), else runs of action_executed whose stamps are
less than gap_s apart. Each executed action becomes one step paired, by ObservationAssembler (the live
recorder's rule), with the state of the same stamp and per camera the first frame captured at/after it within
max_skew_ms; actions with no complete observation are dropped and counted (logged per episode).

Round trip: images (rgb8), state (float32 -> float64 -> float32), actions and every capture/receive stamp are
exact. timestamps.action.capture_ns comes back as the action's stamp (= the state stamp, what the live
recorder writes), so a store holding anything else there loses it. Without the status topic's episode_meta,
task is the `task` option, success unknown, source/policy_version parsed from frame_id, interventions counted
as source changes. Joint names are not in the store: `joint_names` (default joint_0..) names them on export.
Depth and any other extra feature cannot be exported (no topic carries them) and are refused by name.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robot_stack.store import EpisodeMeta, StoreSchema
from robot_stack.store.align import ObservationAssembler
from robot_stack.store.formats._common import (
    META_NAME,
    FormatError,
    Progress,
    Source,
    action_space_guess,
    episode_meta,
    robot_stack_meta,
    schema_from_meta,
    source_tag,
)
from robot_stack.types import (
    ACTION_KEY,
    EE_DELTA_ACTION_NAMES,
    SOURCES,
    STATE_KEY,
    capture_ns_key,
    image_key,
    receive_ns_key,
    rig_features,
)

log = logging.getLogger(__name__)

FMT = "ros2_bag"
GRIPPER_JOINT = "gripper"  # robot_stack.ros.conversions.GRIPPER_JOINT (not imported: that module needs rclpy)
IMAGE_T, JOINT_T, POSE_T, STRING_T = ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState",
                                      "geometry_msgs/msg/PoseStamped", "std_msgs/msg/String")
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
# Standard message definitions are identical across Humble/Jazzy/Kilted for every type used here.
_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
_CAMERA_RE = re.compile(r"^(?P<ns>.*)/camera/(?P<cam>[^/]+)/image_raw$")


def _time(stamp_ns: int):
    return _TYPESTORE.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                            nanosec=int(stamp_ns % 1_000_000_000))


def _header(stamp_ns: int, frame_id: str = ""):
    return _TYPESTORE.types["std_msgs/msg/Header"](stamp=_time(stamp_ns), frame_id=frame_id)


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def parse_source_tag(tag: str) -> tuple[str, str | None]:
    """'policy:bc_conv@v2' -> ('policy', 'bc_conv@v2'); 'sim:scripted_expert' -> ('sim', None); unknown -> import.

    Same rule as the live recorder (robot_stack.store.recorder.parse_source), lenient: a bag from elsewhere
    may carry any frame_id."""
    kind, _, detail = tag.partition(":")
    if kind not in SOURCES:
        return "import", None
    return kind, (detail or None) if kind == "policy" else None


# ---------------------------------------------------------------------- export
def export(store, out: Path, episodes: list[int], progress: Progress, namespace: str | None = None,
           storage: str = "sqlite3", joint_names: list[str] | None = None, base_frame: str = "base_link") -> Path:
    """Write `episodes` as a rosbag2 directory at `out` (storage "sqlite3" or "mcap")."""
    schema = store.schema
    if storage not in STORAGES:
        raise FormatError(f"storage {storage!r} is not one of {sorted(STORAGES)}")
    ns = "/" + (namespace or schema.robot).strip("/")
    cams = schema.cameras
    state_dim = schema.features[STATE_KEY].shape[0] if STATE_KEY in schema.features else 0
    if state_dim < 8:
        raise FormatError(f"ros2_bag export needs observation.state = joints + ee xyz + quat + gripper (>= 8 dims); "
                          f"store has {schema.features.get(STATE_KEY)}")
    n_joints = state_dim - 8
    expected = rig_features({c: schema.features[image_key(c)].shape[:2] for c in cams}, n_joints,
                            schema.features[ACTION_KEY].shape[0])
    extra = sorted(set(schema.features) - set(expected))
    if extra:
        raise FormatError(f"features {extra} have no topic in the ROS 2 interface; export to lerobot_v3, "
                          "robomimic_hdf5 or diffusion_policy_zarr instead (they keep every key)")
    joint_names = list(joint_names) if joint_names is not None else [f"joint_{j}" for j in range(n_joints)]
    if len(joint_names) != n_joints:
        raise FormatError(f"joint_names has {len(joint_names)} names, the store's state has {n_joints} joints")
    action_dim = schema.features[ACTION_KEY].shape[0]
    action_names = (list(EE_DELTA_ACTION_NAMES) if schema.action_space == "ee_delta" and action_dim == 7
                    else [f"a{j}" for j in range(action_dim)])
    types = _TYPESTORE.types
    with Writer(out, version=9, storage_plugin=STORAGES[storage]) as w:
        conn = {cam: w.add_connection(f"{ns}/camera/{cam}/image_raw", IMAGE_T, typestore=_TYPESTORE) for cam in cams}
        conn["joint_states"] = w.add_connection(f"{ns}/joint_states", JOINT_T, typestore=_TYPESTORE)
        conn["ee_pose"] = w.add_connection(f"{ns}/ee_pose", POSE_T, typestore=_TYPESTORE)
        conn["action"] = w.add_connection(f"{ns}/action_executed", JOINT_T, typestore=_TYPESTORE)
        conn["status"] = w.add_connection(f"{ns}/recorder/status", STRING_T, typestore=_TYPESTORE)
        n_lost_action_stamps = 0
        for i in episodes:
            ep, meta = store.get_episode(i), store.episode_meta(i)
            tag = source_tag(meta)
            msgs: list[tuple[int, str, object]] = []  # (bag time ns, connection key, message)
            for t in range(len(ep[ACTION_KEY])):
                s_cap, s_recv = int(ep[capture_ns_key("state")][t]), int(ep[receive_ns_key("state")][t])
                state = ep[STATE_KEY][t].astype(np.float64)
                msgs.append((s_recv, "joint_states", types[JOINT_T](
                    header=_header(s_cap), name=[*joint_names, GRIPPER_JOINT],
                    position=np.r_[state[:n_joints], state[-1]], velocity=np.zeros(0), effort=np.zeros(0))))
                p = state[n_joints:n_joints + 7]
                pose = types["geometry_msgs/msg/Pose"](
                    position=types["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
                    orientation=types["geometry_msgs/msg/Quaternion"](x=p[3], y=p[4], z=p[5], w=p[6]))
                msgs.append((s_recv, "ee_pose", types[POSE_T](header=_header(s_cap, base_frame), pose=pose)))
                last_recv = s_recv
                for cam in cams:
                    img = ep[image_key(cam)][t]
                    h, w_px, _ = img.shape
                    recv = int(ep[receive_ns_key(cam)][t])
                    last_recv = max(last_recv, recv)
                    msgs.append((recv, cam, types[IMAGE_T](
                        header=_header(int(ep[capture_ns_key(cam)][t]), cam), height=h, width=w_px, encoding="rgb8",
                        is_bigendian=0, step=w_px * 3, data=np.frombuffer(img.tobytes(), dtype=np.uint8))))
                n_lost_action_stamps += int(ep[capture_ns_key("action")][t]) != s_cap
                # The arm node sends after the policy saw the whole observation: 1 ns after its last part arrived.
                msgs.append((last_recv + 1, "action", types[JOINT_T](
                    header=_header(s_cap, tag), name=action_names,
                    position=ep[ACTION_KEY][t].astype(np.float64), velocity=np.zeros(0), effort=np.zeros(0))))
            msgs.sort(key=lambda m: m[0])
            start = {"recording": True, "steps": 0, "task": meta.task}
            end = {"recording": False, "steps": len(ep[ACTION_KEY]), "success": meta.success,
                   "episode_meta": meta.to_json()}
            msgs.insert(0, (msgs[0][0] - 1, "status", types[STRING_T](data=json.dumps(start))))
            msgs.append((msgs[-1][0] + 1, "status", types[STRING_T](data=json.dumps(end))))
            for t_ns, key, msg in msgs:
                w.write(conn[key], t_ns, _TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
            progress.step()
        w.set_custom_data(META_NAME, json.dumps(robot_stack_meta(store, episodes)))
    if n_lost_action_stamps:
        log.warning("%d steps had timestamps.action.capture_ns != the state stamp; the bag keeps only the "
                    "state stamp (action_executed header), so an import returns that", n_lost_action_stamps)
    return out


# ---------------------------------------------------------------------- import
class BagSource(Source):
    """A rosbag2 (directory, or one .db3/.mcap file) opened for import.

    Options: namespace (default: the one <ns>/action_executed in the bag), gap_s (split on action stamp
    gaps above it, 2.0 s), max_skew_ms (camera frame vs state stamp, 50 ms), use_status (split on
    recorder/status when present, True), task (for episodes without recorded metadata), control_hz / robot
    (for a bag without robot_stack custom data; control_hz defaults to the median action interval).
    """

    def __init__(self, src: Path, namespace: str | None = None, gap_s: float = 2.0, max_skew_ms: float = 50.0,
                 use_status: bool = True, task: str = "", control_hz: float | None = None, robot: str | None = None):
        self.src, self.gap_ns, self.max_skew_ms = src, int(gap_s * 1e9), float(max_skew_ms)
        self.task = task
        try:
            self.reader = Reader(src)
            self.reader.open()
        except Exception as e:  # noqa: BLE001 - rosbags raises its own errors for corrupt bags
            raise FormatError(f"{src} could not be opened as a rosbag2 bag ({e}); give the bag directory "
                              "(`ros2 bag record -o <dir>`, with metadata.yaml) or one .db3/.mcap file") from None
        try:
            self._open(namespace, use_status, control_hz, robot)
        except BaseException:
            self.reader.close()
            raise

    def _topic(self, name: str):
        return [c for c in self.reader.connections if c.topic == name]

    def _first(self, conns):
        for _c, _t, raw in self.reader.messages(connections=conns):
            return _TYPESTORE.deserialize_cdr(raw, conns[0].msgtype)
        return None

    def _open(self, namespace, use_status, control_hz, robot) -> None:
        topics = {c.topic for c in self.reader.connections}
        if namespace is None:
            nss = sorted({t[:-len("/action_executed")] for t in topics if t.endswith("/action_executed")})
            if len(nss) != 1:
                raise FormatError(f"{self.src}: expected one <ns>/action_executed topic, found namespaces {nss} "
                                  f"(topics: {sorted(topics)}); record action_executed, or pick one with namespace=")
            namespace = nss[0]
        self.ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        for t in (f"{self.ns}/action_executed", f"{self.ns}/joint_states", f"{self.ns}/ee_pose"):
            if t not in topics:
                raise FormatError(f"{self.src} has no {t} topic (topics: {sorted(topics)}); an episode needs "
                                  "action_executed, joint_states and ee_pose (DESIGN.md §3)")
        self.cameras = tuple(sorted(m["cam"] for m in map(_CAMERA_RE.match, topics)
                                    if m and m["ns"] == self.ns))
        # rosbags keeps metadata.yaml's custom_data on the storage reader of a bag directory (none for a bare
        # .db3/.mcap file); look in both places so a rosbags upgrade that moves it up still finds it.
        bag_meta = getattr(self.reader, "metadata", None) or getattr(getattr(self.reader, "storage", None),
                                                                     "metadata", None)
        custom = (getattr(bag_meta, "custom", None) or {}).get(META_NAME)
        rec = json.loads(custom) if custom else {}
        self.schema = schema_from_meta(rec)
        if self.schema is None:
            self.schema = self._derive_schema(control_hz, robot)
        elif set(self.schema.cameras) != set(self.cameras):
            raise FormatError(f"{self.src}: its robot_stack schema lists cameras {self.schema.cameras}, the bag has "
                              f"image topics for {self.cameras}; the bag is incomplete")
        self.cameras = tuple(self.schema.cameras)
        # Pre-pass over the (small) action and status messages: which executed action belongs to which episode.
        actions = [(t, _stamp_ns(_TYPESTORE.deserialize_cdr(raw, c.msgtype).header))
                   for c, t, raw in self.reader.messages(connections=self._topic(f"{self.ns}/action_executed"))]
        status_conns = self._topic(f"{self.ns}/recorder/status")
        statuses = []
        if use_status and status_conns:
            for _c, t, raw in self.reader.messages(connections=status_conns):
                try:
                    statuses.append((t, json.loads(_TYPESTORE.deserialize_cdr(raw, STRING_T).data)))
                except json.JSONDecodeError:
                    log.warning("%s: recorder/status at %d is not JSON; ignored", self.src, t)
        self.episode_of, self.status_meta = self._split(actions, statuses)
        self.n_episodes = len({e for e in self.episode_of if e is not None})
        if self.n_episodes == 0:
            raise FormatError(f"{self.src}: no executed action falls into a recording interval of "
                              f"{self.ns}/recorder/status; import with use_status=False to split by gaps instead")

    def _derive_schema(self, control_hz, robot) -> StoreSchema:
        shapes = {}
        for cam in self.cameras:
            img = self._first(self._topic(f"{self.ns}/camera/{cam}/image_raw"))
            shapes[cam] = (int(img.height), int(img.width))
        js = self._first(self._topic(f"{self.ns}/joint_states"))
        if GRIPPER_JOINT not in list(js.name):
            raise FormatError(f"{self.src}: {self.ns}/joint_states has no {GRIPPER_JOINT!r} joint (names: "
                              f"{list(js.name)}); the state needs the gripper opening")
        act_conns = self._topic(f"{self.ns}/action_executed")
        act = self._first(act_conns)
        names = tuple(act.name)
        self.inferred_fields = frozenset({"control_hz"} if control_hz is None else set()) | (
            {"robot"} if robot is None else set())
        if control_hz is None:
            stamps = np.array([_stamp_ns(_TYPESTORE.deserialize_cdr(raw, JOINT_T).header)
                               for _c, _t, raw in self.reader.messages(connections=act_conns)], dtype=np.int64)
            dt = np.diff(stamps)
            dt = dt[(dt > 0) & (dt < self.gap_ns)]
            # The median step is robust to episode gaps and dropped steps; rounded so 9.98 Hz reads as 10.
            control_hz = round(1e9 / float(np.median(dt)), 1) if len(dt) else 10.0
        return StoreSchema(robot=robot or self.ns.strip("/") or "unknown", control_hz=control_hz,
                           action_space="ee_delta" if names == EE_DELTA_ACTION_NAMES else action_space_guess(len(names)),
                           features=rig_features(shapes, len(js.name) - 1, len(names)), cameras=tuple(shapes))

    def _split(self, actions, statuses):
        """(episode id or None per action in bag order, {episode id: metadata from its end status})."""
        episode_of: list[int | None] = []
        metas: dict[int, dict] = {}
        if statuses:
            intervals, start, end_meta = [], None, {}
            for t, st in statuses:
                if st.get("recording") and start is None:
                    start = t
                elif not st.get("recording") and start is not None:
                    intervals.append((start, t))
                    end_meta[len(intervals) - 1] = st
                    start = None
            if start is not None:
                intervals.append((start, 2**63 - 1))  # the bag ended while recording
            for t, _stamp in actions:
                k = next((k for k, (a, b) in enumerate(intervals) if a <= t <= b), None)
                episode_of.append(k)
            metas = end_meta
        else:
            k, prev = -1, None
            for _t, stamp in actions:
                if prev is None or stamp - prev > self.gap_ns:
                    k += 1
                episode_of.append(k)
                prev = stamp
        return episode_of, metas

    def episodes(self):
        cams = self.cameras
        topic_of = {f"{self.ns}/camera/{c}/image_raw": c for c in cams}
        conns = [c for c in self.reader.connections if c.topic in topic_of or c.topic in (
            f"{self.ns}/joint_states", f"{self.ns}/ee_pose", f"{self.ns}/action_executed")]
        assembler = ObservationAssembler(cams, self.max_skew_ms, horizon_s=max(5.0, 2 * self.gap_ns / 1e9))
        max_skew_ns = int(self.max_skew_ms * 1e6)
        joints: dict[int, tuple] = {}  # stamp -> (msg, bag time) until the ee_pose of the same stamp arrives
        poses: dict[int, tuple] = {}
        pending: deque = deque()  # (episode id, stamp, bag time, action, source tag)
        steps: dict[int, list[dict]] = {}
        tags: dict[int, list[str]] = {}
        dropped: dict[int, int] = {}
        n_action = 0
        # next_ep[i]: episode of the first executed action at or after bag-order index i (None: no more).
        next_ep: list[int | None] = [None] * (len(self.episode_of) + 1)
        for i in range(len(self.episode_of) - 1, -1, -1):
            next_ep[i] = self.episode_of[i] if self.episode_of[i] is not None else next_ep[i + 1]

        def resolve(now_ns: int | None):
            while pending:
                ep, stamp, t, action, tag = pending[0]
                ready = now_ns is None or assembler.camera_has_frame_after(stamp) or now_ns - t > max_skew_ns + 10**9
                if not ready:
                    return
                pending.popleft()
                obs = assembler.observation(stamp)
                if obs is None:
                    dropped[ep] = dropped.get(ep, 0) + 1
                    continue
                obs[ACTION_KEY] = action
                obs[capture_ns_key("action")] = np.int64(stamp)
                steps.setdefault(ep, []).append(obs)
                tags.setdefault(ep, []).append(tag)

        def finished(ep):
            return self._episode(ep, steps.pop(ep, []), tags.pop(ep, []), dropped.pop(ep, 0))

        def add_state(stamp):
            (js, tj), (ps, tp) = joints.pop(stamp), poses.pop(stamp)
            names, pos = list(js.name), np.asarray(js.position, dtype=np.float64)
            if GRIPPER_JOINT not in names:
                raise FormatError(f"{self.src}: joint_states at stamp {stamp} has no {GRIPPER_JOINT!r} joint")
            g = names.index(GRIPPER_JOINT)
            p, o = ps.pose.position, ps.pose.orientation
            state = np.r_[np.delete(pos, g), p.x, p.y, p.z, o.x, o.y, o.z, o.w, pos[g]].astype(np.float32)
            assembler.add_state(stamp, state, max(tj, tp))

        for c, t, raw in self.reader.messages(connections=conns):
            msg = _TYPESTORE.deserialize_cdr(raw, c.msgtype)
            if c.topic in topic_of:
                if msg.encoding != "rgb8":
                    raise FormatError(f"{self.src}: {c.topic} has encoding {msg.encoding!r}; only rgb8 is imported")
                buf = np.asarray(msg.data, dtype=np.uint8)
                img = buf.reshape(msg.height, msg.step)[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
                assembler.add_image(topic_of[c.topic], _stamp_ns(msg.header), img, t)
            elif c.topic.endswith("/joint_states") or c.topic.endswith("/ee_pose"):
                stamp = _stamp_ns(msg.header)
                (joints if c.topic.endswith("/joint_states") else poses)[stamp] = (msg, t)
                if stamp in joints and stamp in poses:
                    add_state(stamp)
                for half in (joints, poses):
                    # A joint_states without its ee_pose (another publisher on the topic, a lost message) never
                    # pairs; keep only the newest few so a long bag cannot grow this without bound.
                    while len(half) > 64:
                        del half[min(half)]
            else:
                ep = self.episode_of[n_action]
                n_action += 1
                if ep is not None:
                    pending.append((ep, _stamp_ns(msg.header), t, np.asarray(msg.position, dtype=np.float32),
                                    msg.header.frame_id))
            resolve(t)
            # Episode ids grow in bag order: every id below the oldest unresolved action is complete.
            limit = pending[0][0] if pending else next_ep[n_action]
            for ep in sorted(e for e in {*steps, *dropped} if limit is None or e < limit):
                done = finished(ep)
                if done is not None:
                    yield done
        resolve(None)
        for ep in sorted({*steps, *dropped}):
            done = finished(ep)
            if done is not None:
                yield done

    def _episode(self, ep: int, frames: list[dict], tags: list[str], n_dropped: int):
        if n_dropped:
            log.warning("%s: episode %d: %d executed actions had no complete observation within %.0f ms "
                        "(a camera stalled?) and were dropped", self.src, ep, n_dropped, self.max_skew_ms)
        if not frames:
            log.warning("%s: episode %d has no complete step; skipped", self.src, ep)
            return None
        data = {k: np.stack([f[k] for f in frames]) for k in self.schema.features}
        end = self.status_meta.get(ep, {})
        if end.get("episode_meta"):
            meta = EpisodeMeta.loads(json.dumps(end["episode_meta"]))
        else:
            parsed = [parse_source_tag(tg) for tg in tags]
            versions = list(dict.fromkeys(v for _k, v in parsed if v))
            meta = episode_meta(None, FMT, self.src, task=end.get("task", self.task), source=parsed[0][0],
                                policy_version=",".join(versions) or None,
                                interventions=sum(a[0] != b[0] for a, b in zip(parsed, parsed[1:], strict=False)),
                                success=end.get("success"))
        return data, meta

    def close(self) -> None:
        self.reader.close()


open_source = BagSource  # the import entry point: its keyword arguments are the import options
