"""Mutable curation state of a store: tombstones (excluded episodes), the train/validation split rule, and success
labels a person corrected.

    <store>/edits.json     {"version": 1, "excluded": [episode_id, ...], "split": {"seed": s, "val_fraction": f},
                            "labels": {episode_id: true | false}}
    <store>/.edits.lock    flock held only for a read-modify-write of edits.json

Why a side file and not zarr arrays: committed episodes are immutable (append-only table, see trajectory.py);
exclusion is an operator decision that can be undone, so it lives outside the commit protocol. It is written
atomically (temp file, fsync, rename, fsync dir), so a crash leaves the old or the new version. It has its own
lock, not the writer lock: an operator can exclude a bad episode while the recorder keeps recording.

Episodes are named by EpisodeMeta.episode_id (stable across compact/merge), so a tombstone or a split
assignment never moves to another episode when indices change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

EDITS_NAME = "edits.json"
EDITS_LOCK = ".edits.lock"
SPLITS = ("train", "val")


def load(path: Path) -> dict:
    try:
        d = json.loads((path / EDITS_NAME).read_text())
    except FileNotFoundError:
        d = {}
    return {"version": 1, "excluded": list(d.get("excluded", [])), "split": d.get("split"),
            "labels": {str(k): bool(v) for k, v in dict(d.get("labels", {})).items()}}


def mtime_ns(path: Path) -> int:
    try:
        return (path / EDITS_NAME).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def locked(path: Path):
    """Hold the edits lock of the store at `path` (no read or write). compact() holds it across its swap so
    no exclusion lands in the copy it is about to replace."""
    while True:
        try:
            fd = os.open(path / EDITS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            from robot_stack.store.schema import StoreError

            raise StoreError(f"cannot edit store {path}: {e.strerror}; the store is on read-only media or not "
                             "writable by this user (copy it to a writable disk first)") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A compaction may have swapped the directory while we waited: the lock we got then belongs to the
            # old copy. Lock the file that is at `path` now instead.
            try:
                same = os.fstat(fd).st_ino == os.stat(path / EDITS_LOCK).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextlib.contextmanager
def editing(path: Path):
    """Read-modify-write edits.json under its lock: `with editing(p) as d: d["excluded"].append(x)`."""
    with locked(path):
        d = load(path)
        yield d
        write_atomic(path / EDITS_NAME, json.dumps(d, indent=1, sort_keys=True).encode())


def write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_of(episode_id: str, seed: int, val_fraction: float) -> str:
    """Deterministic split of one episode: a hash of (seed, episode_id), so it never changes as the store grows."""
    h = hashlib.blake2b(f"{int(seed)}:{episode_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(h, "little") / 2**64
    return "val" if u < float(val_fraction) else "train"
