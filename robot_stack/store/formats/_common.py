"""Pieces every format module shares: errors, progress, the import target, metadata carried in free-form fields."""

from __future__ import annotations

import dataclasses
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from robot_stack.store import EpisodeMeta, StoreError, StoreSchema, TrajectoryStore
from robot_stack.types import ACTION_KEY, DEPTH_PREFIX, IMAGE_PREFIX, STATE_KEY, TIMESTAMP_PREFIX

log = logging.getLogger(__name__)

# Name of the free-form metadata entry (JSON) every export writes: {"schema": StoreSchema JSON,
# "episodes": [EpisodeMeta JSON, ...], "robot_stack_version": ...}. Imports prefer it over guessing.
META_NAME = "robot_stack"


class FormatError(StoreError, ValueError):
    """A source or target that is not in the expected format (or an unknown format); the message names the fix."""


class Progress:
    """Calls progress(done, total) once per episode; a no-op without a callback."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int):
        self.callback, self.total, self.done = callback, int(total), 0
        if self.callback is not None:
            self.callback(0, self.total)

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


class Source(ABC):
    """An opened import source: its store schema and an iterator over (data, EpisodeMeta) episodes.

    inferred_fields: StoreSchema fields (robot, control_hz, action_space, calibration_ids) the source cannot
    hold and were guessed; when importing into an existing store they are taken from that store instead.
    """

    schema: StoreSchema
    inferred_fields: frozenset[str] = frozenset()
    n_episodes: int = 0

    @abstractmethod
    def episodes(self) -> Iterator[tuple[dict[str, np.ndarray], EpisodeMeta]]:
        """Yield ({key: (T, *shape)}, EpisodeMeta) per episode, in source order."""

    def close(self) -> None:  # noqa: B027 - sources without open files need no cleanup
        """Release open files (HDF5 handle, bag reader)."""


def open_target(store_path, schema: StoreSchema, inferred_fields=frozenset(), *, fsync: bool = True) -> TrajectoryStore:
    """The store to import into: created with `schema` when absent, else opened for append and checked.

    Fields the source could only guess are taken from the existing store; features (keys, dtypes, shapes) and
    cameras must match exactly (StoreSchemaError naming the key and the fix otherwise).
    """
    path = Path(store_path)
    if path.exists() and (path / "zarr.json").is_file():
        existing = TrajectoryStore.open(path, mode="r")
        try:
            have = existing.schema
        finally:
            existing.close()
        schema = dataclasses.replace(schema, **{f: getattr(have, f) for f in inferred_fields})
    elif inferred_fields:
        log.warning("creating store %s with guessed %s (the source does not record them): %s", path,
                    sorted(inferred_fields), {f: getattr(schema, f) for f in sorted(inferred_fields)})
    return TrajectoryStore.open_or_create(path, schema, fsync=fsync)


def check_exists(path: Path, what: str, fmt: str) -> None:
    if not path.exists():
        raise FormatError(f"{path} is missing: not a {fmt} layout ({what}); "
                          f"give the root of a {fmt} export or choose the matching format")


# ---------------------------------------------------------------------- metadata in free-form fields
def robot_stack_meta(store: TrajectoryStore, episodes: list[int]) -> dict:
    import robot_stack

    return {"schema": store.schema.to_json(),
            "episodes": [store.episode_meta(i).to_json() for i in episodes],
            "source_store": str(store.path),
            "source_episodes": list(episodes),
            "robot_stack_version": robot_stack.__version__}


def schema_from_meta(d: dict | None) -> StoreSchema | None:
    return None if not d or "schema" not in d else StoreSchema.from_json(d["schema"])


def episode_meta(recorded: dict | None, fmt: str, src: Path, **fallback) -> EpisodeMeta:
    """The EpisodeMeta written by our export when present, else one built from what the source holds
    (source 'import', notes naming the file)."""
    if recorded:
        return EpisodeMeta.loads(json.dumps(recorded))
    fields = {"task": "", "source": "import", "notes": f"imported from {fmt} {src}"}
    fields.update({k: v for k, v in fallback.items() if v is not None})
    return EpisodeMeta(**fields)


def source_tag(meta: EpisodeMeta) -> str:
    """The action_executed frame_id for an episode: 'policy:bc_conv@v2', 'sim', 'teleop' (DESIGN.md §3)."""
    return f"{meta.source}:{meta.policy_version}" if meta.policy_version else meta.source


# ---------------------------------------------------------------------- flat key <-> short names
def short_key(key: str) -> str:
    """Flat key -> an identifier-style name for formats whose configs name keys (robomimic obs, diffusion_policy):
    observation.images.front -> front_image, observation.depth.front -> front_depth,
    observation.state -> robot_state, timestamps.state.capture_ns -> state_capture_ns, action -> action."""
    if key.startswith(IMAGE_PREFIX):
        return f"{key[len(IMAGE_PREFIX):]}_image"
    if key.startswith(DEPTH_PREFIX):
        return f"{key[len(DEPTH_PREFIX):]}_depth"
    if key == STATE_KEY:
        return "robot_state"
    if key == ACTION_KEY:
        return "action"
    if key.startswith(TIMESTAMP_PREFIX):
        key = key[len(TIMESTAMP_PREFIX):]
    return key.replace(".", "_").replace("/", "_")


def short_key_map(keys) -> dict[str, str]:
    """{flat key: short name}; refuses collisions (two flat keys that would share one name)."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for k in keys:
        s = short_key(k)
        if s in seen:
            raise FormatError(f"keys {seen[s]!r} and {k!r} both map to {s!r}; rename one of them in the store")
        seen[s], out[k] = s, s
    return out


def flat_key_guess(name: str) -> str:
    """Inverse of short_key for files without a recorded mapping (foreign robomimic/diffusion_policy data)."""
    if name.endswith("_image"):
        return f"{IMAGE_PREFIX}{name[:-len('_image')]}"
    if name.endswith("_depth"):
        return f"{DEPTH_PREFIX}{name[:-len('_depth')]}"
    if name in ("robot_state", "state"):
        return STATE_KEY
    if name in ("action", "actions"):
        return ACTION_KEY
    return name


def cameras_of(features) -> tuple[str, ...]:
    return tuple(k[len(IMAGE_PREFIX):] for k in features if k.startswith(IMAGE_PREFIX))


def action_space_guess(action_dim: int) -> str:
    return "ee_delta" if action_dim == 7 else "joint"
