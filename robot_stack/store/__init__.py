"""robot_stack.store: the zarr v3 trajectory store (DESIGN.md §3) and its incremental episode writer.

    from robot_stack.store import TrajectoryStore, StoreSchema, EpisodeMeta, EpisodeWriter
"""

from robot_stack.store.schema import (
    EpisodeMeta,
    StoreError,
    StoreLockedError,
    StoreSchema,
    StoreSchemaError,
)
from robot_stack.store.trajectory import RecoveryReport, TrajectoryStore
from robot_stack.store.writer import EpisodeWriter

__all__ = [
    "EpisodeMeta",
    "EpisodeWriter",
    "RecoveryReport",
    "StoreError",
    "StoreLockedError",
    "StoreSchema",
    "StoreSchemaError",
    "TrajectoryStore",
]
