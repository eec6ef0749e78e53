"""Store root metadata (StoreSchema), per-episode metadata (EpisodeMeta) and the store's errors.

Pure dataclasses + validation; no zarr import, so the learner and the checkpoint code can use them cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

import numpy as np

from robot_stack.types import ACTION_KEY, IMAGE_PREFIX, PHASES, SOURCES, STATE_KEY, FeatureSpec

SCHEMA_VERSION = 1

# Keys whose values must be finite: a NaN action or state poisons normalisation statistics and every
# policy trained on the store (DESIGN.md §4.7 "fail loudly at boundaries").
FINITE_KEYS = (ACTION_KEY, STATE_KEY)


DEFAULT_IMAGE_CODEC = "blosc-lz4"  # bit-exact and fastest to encode (benchmarks/results/store.md §4)
DEFAULT_JPEG_QUALITY = 95
_JPEG_RE = re.compile(r"^jpeg(?:-q(\d{1,3}))?$")


class StoreError(RuntimeError):
    """A store that cannot be used as asked (missing, not a store, read-only, locked); the message names the fix."""


class StoreSchemaError(StoreError, ValueError):
    """Data or a schema that does not match the store's schema; the message names the key(s)."""


class StoreLockedError(StoreError):
    """Another writer holds `<store>/.writer.lock`."""


@dataclass
class StoreSchema:
    """Root metadata of a store: what every episode in it was recorded with.

    features: {flat key: FeatureSpec(dtype, per-step shape)}; the stored array for a key is (T, *shape).
    """

    robot: str
    control_hz: float
    action_space: str
    features: dict[str, FeatureSpec]
    cameras: tuple[str, ...] = ()
    calibration_ids: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # Storage choice for image keys ("blosc-lz4" | "jpeg" | "jpeg-q<N>", see robot_stack/store/codecs.py); not
    # part of what the data *means*, so differences() ignores it: an existing store keeps the codec it was
    # created with. Depth keys always stay lossless.
    image_codec: str = DEFAULT_IMAGE_CODEC

    def __post_init__(self) -> None:
        self.control_hz = float(self.control_hz)
        self.cameras = tuple(self.cameras)
        self.features = {str(k): v if isinstance(v, FeatureSpec) else FeatureSpec.from_json(v)
                         for k, v in self.features.items()}
        self.calibration_ids = {str(k): str(v) for k, v in dict(self.calibration_ids).items()}
        parse_image_codec(self.image_codec)  # fail at construction, not at the first write
        if not self.features:
            raise StoreSchemaError("StoreSchema.features is empty; build it with robot_stack.types.rig_features(...)")
        for key, spec in self.features.items():
            try:
                np.dtype(spec.dtype)
            except TypeError as e:
                raise StoreSchemaError(f"feature {key!r} has an unknown dtype {spec.dtype!r}") from e

    def to_json(self) -> dict:
        return {
            "schema_version": int(self.schema_version),
            "robot": self.robot,
            "control_hz": self.control_hz,
            "action_space": self.action_space,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "cameras": list(self.cameras),
            "calibration_ids": dict(self.calibration_ids),
            "image_codec": self.image_codec,
        }

    @classmethod
    def from_json(cls, d: dict) -> StoreSchema:
        return cls(
            robot=str(d["robot"]),
            control_hz=float(d["control_hz"]),
            action_space=str(d["action_space"]),
            features={k: FeatureSpec.from_json(v) for k, v in d["features"].items()},
            cameras=tuple(d.get("cameras", ())),
            calibration_ids=dict(d.get("calibration_ids", {})),
            schema_version=int(d.get("schema_version", SCHEMA_VERSION)),
            image_codec=str(d.get("image_codec", DEFAULT_IMAGE_CODEC)),
        )

    @property
    def camera_shapes(self) -> dict[str, tuple[int, ...]]:
        """{camera: (H, W, 3)} from the image features (the store records one array per camera)."""
        return {k[len(IMAGE_PREFIX):]: tuple(v.shape) for k, v in self.features.items() if k.startswith(IMAGE_PREFIX)}

    def differences(self, other: StoreSchema) -> list[str]:
        """Human-readable differences in what defines the stored arrays and their meaning.

        calibration_ids are deliberately not compared: recalibrating a camera must not force a new store
        (open_or_create logs a warning for them instead).
        """
        diffs: list[str] = []
        for name in ("schema_version", "robot", "control_hz", "action_space", "cameras"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                diffs.append(f"{name}: store has {a!r}, given {b!r}")
        for key in sorted(set(self.features) | set(other.features)):
            a, b = self.features.get(key), other.features.get(key)
            if a is None:
                diffs.append(f"features[{key!r}]: not in the store, given {b.to_json()}")
            elif b is None:
                diffs.append(f"features[{key!r}]: store has {a.to_json()}, missing from the given schema")
            elif (np.dtype(a.dtype), tuple(a.shape)) != (np.dtype(b.dtype), tuple(b.shape)):
                diffs.append(f"features[{key!r}]: store has {a.to_json()}, given {b.to_json()}")
        return diffs

    def check_compatible(self, other: StoreSchema) -> None:
        """Raise StoreSchemaError naming every differing key (robot, control_hz, action_space, cameras, features)."""
        diffs = self.differences(other)
        if diffs:
            raise StoreSchemaError(
                "store schema mismatch:\n  " + "\n  ".join(diffs)
                + "\nrecord into a new store (store=...) or use the rig config the store was created with"
            )


def parse_image_codec(name: str) -> tuple[str, int | None]:
    """'blosc-lz4' -> ('blosc-lz4', None); 'jpeg' -> ('jpeg', 95); 'jpeg-q90' -> ('jpeg', 90)."""
    if name == "blosc-lz4":
        return name, None
    m = _JPEG_RE.match(str(name))
    if m:
        q = int(m.group(1)) if m.group(1) else DEFAULT_JPEG_QUALITY
        if 1 <= q <= 100:
            return "jpeg", q
    raise StoreSchemaError(f"unknown image_codec {name!r}; use 'blosc-lz4' (lossless, default), 'jpeg' "
                           f"(quality {DEFAULT_JPEG_QUALITY}) or 'jpeg-q<1..100>'")


def _opt_str(v) -> str | None:
    return None if v is None else str(v)


@dataclass
class EpisodeMeta:
    """Per-episode metadata, one row per committed episode (aligned with meta/episode_ends).

    source: one of robot_stack.types.SOURCES; phase: forward | backward | None (reset-free practice);
    success: None when unknown (e.g. not yet labelled); times are wall-clock ns (time.time_ns()).
    """

    task: str
    source: str
    phase: str | None = None
    success: bool | None = None
    policy_version: str | None = None
    interventions: int = 0
    start_time_ns: int | None = None
    end_time_ns: int | None = None
    notes: str = ""  # operator notes (free text; `robot-stack store show` prints them)
    # Stable identity across compact/merge (indices change there); the store assigns a uuid4 hex at commit.
    # The train/validation split hashes it, so an episode keeps its split as the store grows or is compacted.
    episode_id: str | None = None
    # Reset-free practice (robot_stack/practice): the attempt number within the store's practice history, and in
    # sim the ground-truth success. `success` stays the label the learner trains on (the success classifier's,
    # for practice); `true_success` is for measurement only (classifier FP/FN, benchmarks) and nothing may
    # train on it, or the sim would hand the robot a reward it cannot have on a real rig.
    attempt: int | None = None
    true_success: bool | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.task, str):
            raise StoreSchemaError(f"episode meta 'task' must be a language string, got {self.task!r}")
        if self.source not in SOURCES:
            raise StoreSchemaError(f"episode meta 'source' must be one of {SOURCES}, got {self.source!r}")
        if self.phase is not None and self.phase not in PHASES:
            raise StoreSchemaError(f"episode meta 'phase' must be one of {PHASES} or None, got {self.phase!r}")
        if self.success is not None:
            if not isinstance(self.success, bool | np.bool_):
                raise StoreSchemaError(f"episode meta 'success' must be bool or None, got {self.success!r}")
            self.success = bool(self.success)
        if self.true_success is not None:
            if not isinstance(self.true_success, bool | np.bool_):
                raise StoreSchemaError(f"episode meta 'true_success' must be bool or None, got {self.true_success!r}")
            self.true_success = bool(self.true_success)
        if self.attempt is not None:
            if isinstance(self.attempt, bool) or int(self.attempt) != self.attempt or int(self.attempt) < 0:
                raise StoreSchemaError(f"episode meta 'attempt' must be an int >= 0 or None, got {self.attempt!r}")
            self.attempt = int(self.attempt)
        self.policy_version = _opt_str(self.policy_version)
        self.interventions = int(self.interventions)
        if self.interventions < 0:
            raise StoreSchemaError(f"episode meta 'interventions' must be >= 0, got {self.interventions}")
        for name in ("start_time_ns", "end_time_ns"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, int(v))
        self.notes = "" if self.notes is None else str(self.notes)
        self.episode_id = _opt_str(self.episode_id)

    def replace(self, **updates) -> EpisodeMeta:
        unknown = set(updates) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise StoreSchemaError(f"unknown episode meta field(s) {sorted(unknown)}; known: {_META_FIELDS}")
        return dataclasses.replace(self, **updates)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_any(cls, meta: EpisodeMeta | dict) -> EpisodeMeta:
        if isinstance(meta, EpisodeMeta):
            return dataclasses.replace(meta)  # a copy: the caller's object is never mutated
        if not isinstance(meta, dict):
            raise StoreSchemaError(f"episode meta must be an EpisodeMeta or a dict, got {type(meta).__name__}")
        unknown = set(meta) - set(_META_FIELDS)
        if unknown:
            raise StoreSchemaError(f"unknown episode meta field(s) {sorted(unknown)}; known: {_META_FIELDS}")
        missing = [k for k in ("task", "source") if k not in meta]
        if missing:
            raise StoreSchemaError(f"episode meta is missing {missing} (task = language string, source in {SOURCES})")
        return cls(**meta)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, allow_nan=False)

    @classmethod
    def loads(cls, s: str) -> EpisodeMeta:
        d = json.loads(s)
        return cls(**{k: v for k, v in d.items() if k in _META_FIELDS})  # tolerate fields added later


_META_FIELDS = tuple(f.name for f in dataclasses.fields(EpisodeMeta))


def _allowed_cast(src: np.dtype, dst: np.dtype) -> bool:
    """Casts the store does silently: exact, numpy-safe, or any int/float into a float key.

    int64 -> uint8 (an image computed in int) is refused: it would wrap silently.
    """
    if src == dst or np.can_cast(src, dst, casting="safe"):
        return True
    return dst.kind == "f" and src.kind in "fiu"


def validate_columns(features: dict[str, FeatureSpec], data: dict[str, np.ndarray],
                     what: str = "episode") -> tuple[dict[str, np.ndarray], int]:
    """Check a {key: (T, *shape)} dict against the schema; returns (arrays cast to the schema dtypes, T).

    Every error names the key and says what was expected.
    """
    if not isinstance(data, dict):
        raise StoreSchemaError(f"{what} data must be a dict of flat keys -> arrays, got {type(data).__name__}")
    missing = [k for k in features if k not in data]
    if missing:
        raise StoreSchemaError(f"{what} is missing key(s) {missing}; the store schema needs {sorted(features)}")
    unknown = [k for k in data if k not in features]
    if unknown:
        raise StoreSchemaError(
            f"{what} has key(s) {unknown} that are not in the store schema {sorted(features)}; "
            "drop them or record into a store created with those features")
    out: dict[str, np.ndarray] = {}
    lengths: dict[str, int] = {}
    for key, spec in features.items():
        arr = np.asarray(data[key])
        want_dtype, want_shape = np.dtype(spec.dtype), tuple(spec.shape)
        if arr.ndim != len(want_shape) + 1 or tuple(arr.shape[1:]) != want_shape:
            raise StoreSchemaError(
                f"{what} key {key!r} has shape {tuple(arr.shape)}; expected (T, *{want_shape}) = (T{''.join(f', {s}' for s in want_shape)})")
        if not _allowed_cast(arr.dtype, want_dtype):
            raise StoreSchemaError(f"{what} key {key!r} has dtype {arr.dtype}; expected {want_dtype}")
        if key in FINITE_KEYS and arr.dtype.kind == "f":
            bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if bad.any():
                raise StoreSchemaError(
                    f"{what} key {key!r} has NaN/inf at step(s) {np.flatnonzero(bad)[:5].tolist()}; "
                    "refusing to store it (fix the source: the policy/teleop produced a non-finite value)")
        out[key] = np.ascontiguousarray(arr, dtype=want_dtype)
        lengths[key] = len(arr)
    if len(set(lengths.values())) > 1:
        raise StoreSchemaError(f"{what} keys have unequal lengths (time axis 0): {lengths}")
    n = next(iter(lengths.values()))
    return out, n



def validate_frame(features: dict[str, FeatureSpec], frame: dict) -> dict[str, np.ndarray]:
    """Check one step {key: value of shape spec.shape} (scalars allowed for shape ()); returns copies cast to
    the schema dtypes. Copies, because camera drivers reuse their frame buffers."""
    if not isinstance(frame, dict):
        raise StoreSchemaError(f"a step must be a dict of flat keys -> values, got {type(frame).__name__}")
    if frame.keys() != features.keys():
        missing = [k for k in features if k not in frame]
        unknown = [k for k in frame if k not in features]
        raise StoreSchemaError(
            f"step keys do not match the store schema: missing {missing}, not in the schema {unknown}")
    out: dict[str, np.ndarray] = {}
    for key, spec in features.items():
        v = np.asarray(frame[key])
        want_dtype = np.dtype(spec.dtype)
        if v.shape != tuple(spec.shape):
            raise StoreSchemaError(f"step key {key!r} has shape {v.shape}; expected {tuple(spec.shape)}")
        if not _allowed_cast(v.dtype, want_dtype):
            raise StoreSchemaError(f"step key {key!r} has dtype {v.dtype}; expected {want_dtype}")
        if key in FINITE_KEYS and v.dtype.kind == "f" and not np.isfinite(v).all():
            raise StoreSchemaError(
                f"step key {key!r} has NaN/inf {v.tolist()}; refusing to store it "
                "(fix the source: the policy/teleop produced a non-finite value)")
        out[key] = np.array(v, dtype=want_dtype, copy=True)
    return out
