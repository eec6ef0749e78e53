"""The one data contract shared by cameras, arms, recorder, store, learner and inference (DESIGN.md §3).

Flat feature keys:
    observation.images.<camera>   uint8 (H, W, 3) RGB
    observation.state             float32 (STATE_DIM,) = joints (n_joints) + ee xyz (3) + ee quat xyzw (4) + gripper (1)
    action                        float32 (7,) in physical units (ee_delta space, see below)
    timestamps.<stream>.capture_ns / .receive_ns   int64, one per recorded step

`ee_delta` action: [dx, dy, dz, droll, dpitch, dyaw, gripper], metres and radians per control step in the
robot base frame; gripper absolute in [0, 1] with 1 = open (BridgeData/OpenVLA convention).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_PREFIX = "observation.images."
DEPTH_PREFIX = "observation.depth."
STATE_KEY = "observation.state"
# Privileged object state: sim object poses, or a tracker such as AprilTags on a real rig (LeRobot's key).
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
TIMESTAMP_PREFIX = "timestamps."

EE_DELTA_ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
EE_DELTA_DIM = len(EE_DELTA_ACTION_NAMES)
GRIPPER_INDEX = 6  # gripper is absolute in [0, 1] and never normalised

ACTION_SPACES: dict[str, tuple[str, ...]] = {"ee_delta": EE_DELTA_ACTION_NAMES}

# Episode sources and phases (per-episode metadata in the store).
SOURCES = ("teleop", "practice", "policy", "sim", "import")
PHASES = ("forward", "backward")


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def camera_of(key: str) -> str:
    if not key.startswith(IMAGE_PREFIX):
        raise ValueError(f"{key!r} is not an image key (expected {IMAGE_PREFIX}<camera>)")
    return key[len(IMAGE_PREFIX):]


def capture_ns_key(stream: str) -> str:
    """Per-step capture timestamp of a stream ('state', 'action' or a camera name)."""
    return f"{TIMESTAMP_PREFIX}{stream}.capture_ns"


def receive_ns_key(stream: str) -> str:
    return f"{TIMESTAMP_PREFIX}{stream}.receive_ns"


def state_dim(n_joints: int) -> int:
    return n_joints + 3 + 4 + 1


@dataclass(frozen=True)
class FeatureSpec:
    """dtype + per-step shape of one flat key; the store and the checkpoint schema both use it."""

    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> FeatureSpec:
        return cls(dtype=str(d["dtype"]), shape=tuple(int(s) for s in d["shape"]))


def rig_features(cameras: dict[str, tuple[int, int]], n_joints: int, action_dim: int = EE_DELTA_DIM) -> dict[str, FeatureSpec]:
    """The features a rig records: images per camera (H, W), state, action and their timestamps."""
    feats: dict[str, FeatureSpec] = {}
    for name, (h, w) in cameras.items():
        feats[image_key(name)] = FeatureSpec("uint8", (h, w, 3))
        feats[capture_ns_key(name)] = FeatureSpec("int64", ())
        feats[receive_ns_key(name)] = FeatureSpec("int64", ())
    feats[STATE_KEY] = FeatureSpec("float32", (state_dim(n_joints),))
    feats[capture_ns_key("state")] = FeatureSpec("int64", ())
    feats[receive_ns_key("state")] = FeatureSpec("int64", ())
    feats[ACTION_KEY] = FeatureSpec("float32", (action_dim,))
    feats[capture_ns_key("action")] = FeatureSpec("int64", ())
    return feats
