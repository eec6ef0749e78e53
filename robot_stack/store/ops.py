"""Whole-store operations: compact (drop tombstoned episodes), merge stores, copy episodes.

    compact(path):  <dir>/.name.compact-XXXX  ◄── copy non-excluded episodes (new store, fsynced)
                    swap: rename(path -> .name.old-XXXX), rename(new -> path)   then delete the old one
The old store stays complete until the new one is fully written and fsynced; a crash before the swap leaves
the original untouched (plus a stray .compact-* dir, removed by the next compact); a crash between the two
renames leaves `path` missing and both siblings present, which TrajectoryStore.open reports with the fix.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from robot_stack.store import edits as _edits
from robot_stack.store.schema import StoreError
from robot_stack.store.trajectory import TrajectoryStore, _fsync_path

log = logging.getLogger(__name__)

Progress = Callable[[int], None] | None  # called with the number of episodes just done (tqdm.update)


def copy_episodes(src: TrajectoryStore, dst: TrajectoryStore, episodes: Sequence[int], progress: Progress = None) -> int:
    """Append src episodes (data + metadata, episode_id kept) to dst; returns the number copied."""
    for i in episodes:
        dst.append_episode(src.get_episode(i), src.episode_meta(i))
        if progress:
            progress(1)
    return len(episodes)


def compact(path, progress: Progress = None, *, fsync: bool = True) -> dict:
    """Rewrite the store without its tombstoned episodes and swap it in atomically (needs the writer lock:
    stop the recorder first). Returns {"kept": n, "dropped": m, "old_steps": .., "new_steps": ..}."""
    path = Path(path).absolute()
    src = TrajectoryStore.open(path, mode="a", fsync=fsync)  # the writer lock: nobody appends meanwhile
    try:
        keep = src.episodes()
        dropped = src.n_episodes - len(keep)
        for stale in path.parent.glob(f".{path.name}.compact-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = path.parent / f".{path.name}.compact-{uuid.uuid4().hex[:8]}"
        dst = TrajectoryStore.create(tmp, src.schema, fsync=fsync)
        try:
            copy_episodes(src, dst, keep, progress)
            new_steps = dst.n_steps
        finally:
            dst.close()
        rule = src.split_rule
        if rule:  # the split rule hashes episode ids, which were kept: the assignment survives compaction
            with _edits.editing(tmp) as d:
                d["split"] = rule
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        path.rename(old)
        tmp.rename(path)
        if fsync:
            _fsync_path(path.parent)
        result = {"kept": len(keep), "dropped": dropped, "old_steps": src.n_steps, "new_steps": new_steps}
    finally:
        src.close()
    shutil.rmtree(old, ignore_errors=True)
    log.info("compacted %s: %s", path, result)
    return result


def merge(dst_path, src_paths: Sequence, progress: Progress = None, *, include_excluded: bool = False,
          fsync: bool = True) -> dict:
    """Append every (non-excluded) episode of each source store to dst (created with the first source's schema
    if missing). Every source's schema must match dst's (StoreSchemaError names the differing keys)."""
    srcs = [TrajectoryStore.open(p, mode="r") for p in src_paths]
    if not srcs:
        raise StoreError("merge needs at least one source store")
    try:
        dst = TrajectoryStore.open_or_create(dst_path, srcs[0].schema, fsync=fsync)
        try:
            for s in srcs:  # check all schemas before writing anything
                try:
                    dst.schema.check_compatible(s.schema)
                except StoreError as e:
                    raise type(e)(f"cannot merge {s.path} into {dst.path}: {e}") from None
            added = 0
            for s in srcs:
                eps = s.episodes(include_excluded=include_excluded)
                added += copy_episodes(s, dst, eps, progress)
            return {"added": added, "episodes": dst.n_episodes}
        finally:
            dst.close()
    finally:
        for s in srcs:
            s.close()
