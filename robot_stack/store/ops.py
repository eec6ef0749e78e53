"""Whole-store operations: compact (drop tombstoned episodes), merge stores, copy episodes.

    compact(path):  <dir>/.name.compact-XXXX  ◄── copy non-excluded episodes (new store, fsynced)
                    edits lock held: carry over exclusions made during the copy, then
                    swap: rename(path -> .name.old-XXXX), rename(new -> path)
                    retire: rename(.name.old-XXXX -> .name.trash-XXXX), then delete it
The old store stays complete until the new one is fully written and fsynced; a crash before the swap leaves
the original untouched (plus a stray .compact-* dir, removed by the next compact); a crash between the two
renames leaves `path` missing and both siblings present, which TrajectoryStore.open reports with the fix.
An `.old-*` is only ever made by renaming a complete store and only removed by renaming it to `.trash-*`
before the slow delete, so a killed delete never leaves a half-deleted `.old-*` for the recovery
instruction to name. Leftover `.compact-*`, `.old-*` and `.trash-*` siblings of a healthy store are removed
by the next compact (it holds the writer lock, so none of them belongs to a running operation).

    merge(dst, srcs): episodes are appended one by one (each its own commit) and deduplicated by episode_id,
    so re-running a killed merge adds only what is missing; merging a store into itself is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from robot_stack.store import edits as _edits
from robot_stack.store import faults
from robot_stack.store.schema import StoreError
from robot_stack.store.trajectory import TrajectoryStore, _fsync_path

log = logging.getLogger(__name__)

Progress = Callable[[int], None] | None  # called with the number of episodes just done (tqdm.update)


def copy_episodes(src: TrajectoryStore, dst: TrajectoryStore, episodes: Sequence[int], progress: Progress = None,
                  recorded_labels: bool = False) -> int:
    """Append src episodes (data + metadata, episode_id kept) to dst; returns the number copied. The metadata carries
    corrected success labels (set_success) unless recorded_labels: compaction keeps the recorded label and carries
    the correction as an edit, so it stays undoable."""
    for i in episodes:
        dst.append_episode(src.get_episode(i), src.recorded_meta(i) if recorded_labels else src.episode_meta(i))
        if progress:
            progress(1)
    return len(episodes)


def _leftovers(path: Path) -> list[Path]:
    return sorted(p for kind in ("compact", "old", "trash") for p in path.parent.glob(f".{path.name}.{kind}-*"))


def _remove_tree(root: Path) -> None:
    """rmtree with a named crash point after the first file (kill tests: a delete killed half-way)."""
    first = True
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            os.unlink(os.path.join(dirpath, f))
            if first:
                faults.crash_point("compact_rmtree")
                first = False
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(root)


def _retire(old: Path, fsync: bool) -> None:
    """Delete an old store copy: rename it out of the `.old-*` namespace first (atomic), then delete."""
    trash = old.with_name(old.name.replace(".old-", ".trash-", 1))
    old.rename(trash)
    if fsync:
        _fsync_path(trash.parent)
    _remove_tree(trash)


def compact(path, progress: Progress = None, *, fsync: bool = True) -> dict:
    """Rewrite the store without its tombstoned episodes and swap it in atomically (needs the writer lock:
    stop the recorder first). Exclusions made while it copies are kept (see module docstring). Returns
    {"kept": n, "dropped": m, "old_steps": .., "new_steps": .., "removed_leftovers": [..]}."""
    path = Path(path).absolute()
    src = TrajectoryStore.open(path, mode="a", fsync=fsync)  # the writer lock: nobody appends meanwhile
    old = None
    try:
        # `path` is a healthy store and we hold its writer lock: every sibling copy is a leftover of a killed
        # or finished compaction (an interrupted swap would have left `path` missing and open() refusing).
        leftovers = _leftovers(path)
        for stale in leftovers:
            log.warning("removing leftover %s of an earlier compaction", stale)
            shutil.rmtree(stale, ignore_errors=True)
        keep = src.episodes()
        dropped = src.n_episodes - len(keep)
        tmp = path.parent / f".{path.name}.compact-{uuid.uuid4().hex[:8]}"
        try:
            dst = TrajectoryStore.create(tmp, src.schema, fsync=fsync)
            try:
                for i in keep:
                    copy_episodes(src, dst, [i], progress, recorded_labels=True)
                    faults.crash_point("compact_copy")
                new_steps = dst.n_steps
                # uid of every kept episode in the copy, to carry over exclusions made during the copy
                new_uid = {src.episode_uid(i): dst.episode_uid(j) for j, i in enumerate(keep)}
            finally:
                dst.close()
            with _edits.locked(path):  # no exclusion can land in the old copy from here until the swap is done
                d = _edits.load(path)
                late = [new_uid[u] for u in d["excluded"] if u in new_uid]
                # Corrected labels stay edits (the copy holds the recorded ones), including those made during the copy.
                labels = {new_uid[u]: v for u, v in d["labels"].items() if u in new_uid}
                if late or d["split"] or labels:
                    # The split rule hashes episode ids, which were kept: the assignment survives compaction.
                    _edits.write_atomic(tmp / _edits.EDITS_NAME, json.dumps(
                        {"version": 1, "excluded": late, "split": d["split"], "labels": labels}, indent=1,
                        sort_keys=True).encode())
                if late:
                    log.info("kept %d exclusion(s) made during the compaction: %s", len(late), late)
                faults.crash_point("compact_swap_ready")
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                path.rename(old)
                faults.crash_point("compact_renamed")
                tmp.rename(path)
                if fsync:
                    _fsync_path(path.parent)
        except BaseException:
            # Disk full or any failure before the swap: do not leave a second (partial) copy filling the disk.
            if tmp.exists() and path.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        result = {"kept": len(keep), "dropped": dropped, "old_steps": src.n_steps, "new_steps": new_steps,
                  "removed_leftovers": [str(p) for p in leftovers]}
    finally:
        src.close()
    _retire(old, fsync)
    log.info("compacted %s: %s", path, result)
    return result


def merge(dst_path, src_paths: Sequence, progress: Progress = None, *, include_excluded: bool = False,
          fsync: bool = True) -> dict:
    """Append every (non-excluded) episode of each source store to dst (created with the first source's schema
    if missing). Every source's schema must match dst's (StoreSchemaError names the differing keys).
    Idempotent: an episode whose episode_id dst already holds is skipped, so re-running a killed merge adds
    only the rest. Merging a store into itself is refused."""
    dst_real = os.path.realpath(Path(dst_path).absolute())
    for p in src_paths:
        if os.path.realpath(Path(p).absolute()) == dst_real:
            raise StoreError(f"cannot merge {p} into itself ({dst_path} is the same store); name a different "
                             "destination, or use `robot-stack store compact` to rewrite a store in place")
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
            have = {dst.episode_meta(i).episode_id for i in range(dst.n_episodes)} - {None}
            added = skipped = 0
            for s in srcs:
                for i in s.episodes(include_excluded=include_excluded):
                    eid = s.episode_meta(i).episode_id
                    if eid is not None and eid in have:
                        skipped += 1  # already merged (a re-run after a kill, or one episode in two sources)
                        continue
                    added += copy_episodes(s, dst, [i], progress)
                    have.add(eid)
                    faults.crash_point("merge_episode")
            if skipped:
                log.info("merge: skipped %d episode(s) already in %s (same episode_id)", skipped, dst.path)
            return {"added": added, "skipped_duplicates": skipped, "episodes": dst.n_episodes}
        finally:
            dst.close()
    finally:
        for s in srcs:
            s.close()
