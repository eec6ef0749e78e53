"""What the dashboard reads (and curates) on disk: the trajectory store's episodes and the checkpoint versions.

Edits go through the store's own API (TrajectoryStore.exclude / include: tombstones in edits.json, under its
own lock, safe while the recorder appends), exactly like `robot-stack store exclude`. The page names an episode
by index AND episode_id, so a click never lands on another episode after a compaction renumbered them.
"""

from __future__ import annotations

import threading
from pathlib import Path

from robot_stack.types import IMAGE_PREFIX, image_key


class EpisodeNotFound(LookupError):
    """An episode index / id / frame / camera the store does not have; the message says what it has."""


class EpisodeMismatch(ValueError):
    """The episode at that index has another id: the store changed (compaction, merge) since the page loaded."""


class StoreView:
    """Read-only view of one store (plus exclude/include). Thread-safe: one lock around the store object,
    which TrajectoryStore documents as single-threaded."""

    def __init__(self, store_path: str | Path):
        self.path = Path(store_path)
        self._lock = threading.Lock()
        self._store = None

    def _open(self):  # lock held
        from robot_stack.store import StoreError, TrajectoryStore

        if self._store is not None:
            try:
                self._store.refresh()
                return self._store
            except StoreError:  # replaced underneath us (compact): reopen
                self._store.close()
                self._store = None
        if not self.path.exists():
            return None
        self._store = TrajectoryStore.open(self.path, mode="r")
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def summary(self) -> dict:
        """{"path", "exists", "cameras", "episodes": [{index, id, task, source, phase, success, length,
        excluded, interventions, policy_version}]} (newest last)."""
        with self._lock:
            s = self._open()
            if s is None:
                return {"path": str(self.path), "exists": False, "cameras": [], "episodes": []}
            excluded = s.excluded_episodes()
            rows = []
            for i in range(s.n_episodes):
                m, sl = s.episode_meta(i), s.episode_slice(i)
                rows.append({"index": i, "id": s.episode_uid(i), "task": m.task, "source": m.source,
                             "phase": m.phase, "success": m.success, "length": sl.stop - sl.start,
                             "excluded": i in excluded, "interventions": m.interventions,
                             "policy_version": m.policy_version})
            cams = sorted(k[len(IMAGE_PREFIX):] for k in s.schema.features if k.startswith(IMAGE_PREFIX))
            return {"path": str(s.path), "exists": True, "cameras": cams, "episodes": rows}

    def _check(self, s, index: int, episode_id: str | None) -> slice:
        if s is None:
            raise EpisodeNotFound(f"store {self.path} does not exist yet (no episode was recorded)")
        if not 0 <= index < s.n_episodes:
            raise EpisodeNotFound(f"episode {index} does not exist: the store has {s.n_episodes} episodes "
                                  f"(0..{s.n_episodes - 1})")
        if episode_id is not None and s.episode_uid(index) != episode_id:
            raise EpisodeMismatch(f"episode {index} is now {s.episode_uid(index)!r}, not {episode_id!r}: the store "
                                  "was compacted or merged since the page loaded; reload the episode list")
        return s.episode_slice(index)

    def frame(self, index: int, step: int, camera: str):
        """(H, W, 3) uint8 frame `step` of episode `index` from `camera`."""
        with self._lock:
            s = self._open()
            sl = self._check(s, index, None)
            key = image_key(camera)
            if key not in s.schema.features:
                cams = sorted(k[len(IMAGE_PREFIX):] for k in s.schema.features if k.startswith(IMAGE_PREFIX))
                raise EpisodeNotFound(f"camera {camera!r} is not in the store; cameras: {cams}")
            n = sl.stop - sl.start
            if not 0 <= step < n:
                raise EpisodeNotFound(f"step {step} is outside episode {index} (0..{n - 1})")
            return s.read(key, sl.start + step, sl.start + step + 1)[0]

    def set_excluded(self, index: int, episode_id: str, excluded: bool) -> dict:
        """Tombstone (or bring back) one episode; returns its new row."""
        with self._lock:
            s = self._open()
            self._check(s, index, episode_id)
            s.exclude([index], undo=not excluded)
            return {"index": index, "id": episode_id, "excluded": index in s.excluded_episodes()}


def checkpoint_versions(root: str | Path) -> list[dict]:
    """Versions saved under a checkpoint root (v#### dirs): version, training step, parent, created_ns, and
    whether `latest` points at it. Unreadable manifests are listed with their error, not hidden."""
    from robot_stack.policies.checkpoint import (
        CheckpointError,
        latest_checkpoint,
        list_versions,
        read_manifest,
    )

    root = Path(root)
    try:
        latest = latest_checkpoint(root)
    except CheckpointError:
        latest = None
    out = []
    for v in list_versions(root):
        d = root / f"v{v:04d}"
        row: dict = {"version": v, "path": str(d), "latest": latest is not None and latest.name == d.name}
        try:
            m = read_manifest(d)
            row.update(step=m.step, parent_version=m.parent_version, created_ns=m.created_ns, policy_type=m.policy_type)
        except CheckpointError as e:
            row["error"] = str(e)
        out.append(row)
    return out
