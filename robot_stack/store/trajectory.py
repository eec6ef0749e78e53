"""TrajectoryStore: the zarr v3 trajectory store (DESIGN.md §3 "Trajectory store (zarr v3)").

Layout of one store (a zarr v3 group on local disk):

    <store>/zarr.json              root attributes: schema_version, robot, control_hz, action_space, features,
                                   cameras, calibration_ids, robot_stack_version, created_time_ns / _iso
    <store>/data/<key>             (N, *shape) flat time-concatenated steps of every episode; chunked only in time.
                                   images/depth: one frame per inner chunk, IMAGE_FRAMES_PER_SHARD frames per
                                   shard file (100k frames -> ~1.6k files per camera, not 100k);
                                   low-dim: LOWDIM_CHUNK_STEPS steps per chunk, blosc zstd
    <store>/meta/episode_info      (n_episodes,) str: one EpisodeMeta JSON per episode, aligned with episode_ends
    <store>/meta/episode_stats     (n_episodes,) str: partial statistics of the float keys (stats.py), one row
                                   per episode in its own chunk file (rows are a few KB; a shared chunk would be
                                   rewritten on every commit)
    <store>/meta/episode_ends      (n_episodes,) int64, exclusive end step of each episode = THE COMMIT MARKER
    <store>/edits.json             tombstones + split rule (edits.py); outside the commit protocol, atomic replace
    <store>/.writer.lock           advisory flock held by the single writer (mode "a")

Commit protocol (append_episode / EpisodeWriter.commit):

    1. resize + write data/<key> past the committed end      (EpisodeWriter's flusher thread does this
                                                              in shard-aligned batches during the episode)
    2. fsync the chunk/shard files, array metadata and directories of that step range
    3. append + fsync the episode's rows in meta/episode_stats and meta/episode_info
    4. LAST: append + fsync the new end in meta/episode_ends  -> the episode exists from this moment

Why the end index goes last: a crash anywhere before step 4 leaves only bytes *past* the committed end,
which the next open in mode "a" cuts back (and reports in a RecoveryReport); nothing committed is ever
touched, and no reader can ever see a half-written episode because readers only expose
steps < episode_ends[-1]. zarr's LocalStore replaces every file atomically (temp file + rename), so a
reader sees either the old or the new version of a chunk, never a torn one; within step 4 the array shape
(zarr.json) is written before the chunk holding the new value, so a reader or a crash may see one trailing
entry that still holds the fill value (-1); the table validation below treats that entry as not committed.

What is durable when (fsync=True, the default): after commit/append_episode returns, the episode's data,
metadata and end index are on disk (files and directory entries fsynced). Steps flushed by EpisodeWriter
before commit are written to the OS but not fsynced; they are uncommitted either way and lost/cut back on a
crash. With fsync=False (tests, throwaway stores) a process crash is still safe; an OS crash/power loss may
lose the most recent episodes, and then the open-time validation drops the entries whose data did not survive.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

import robot_stack
from robot_stack.store import codecs as _codecs
from robot_stack.store import edits as _edits
from robot_stack.store import stats as _stats
from robot_stack.store.faults import crash_point
from robot_stack.store.schema import (
    EpisodeMeta,
    StoreError,
    StoreLockedError,
    StoreSchema,
    StoreSchemaError,
    validate_columns,
)
from robot_stack.types import DEPTH_PREFIX, IMAGE_PREFIX

log = logging.getLogger(__name__)

# The commit protocol rests on LocalStore replacing every file atomically (temp file + rename), which zarr
# has done only since 3.1.3 (zarr-python PR #3412). With 3.0.0-3.1.2 a kill mid-rewrite of a shared chunk
# (episode_ends chunk 0, an image shard) corrupts committed episodes (review H5), so older versions are refused.
MIN_ZARR_VERSION = "3.1.3"


def check_zarr_version(version: str | None = None) -> None:
    """Raise StoreError unless the installed zarr (or `version`) is at least MIN_ZARR_VERSION."""
    from packaging.version import InvalidVersion, Version

    version = zarr.__version__ if version is None else version
    try:
        ok = Version(version) >= Version(MIN_ZARR_VERSION)
    except InvalidVersion:
        ok = False
    if not ok:
        raise StoreError(f"zarr {version} is installed, but the trajectory store needs zarr >= {MIN_ZARR_VERSION} "
                         "(atomic LocalStore writes; older versions can corrupt committed episodes on a crash); "
                         f"run: pip install 'zarr>={MIN_ZARR_VERSION},<4'")


LOCK_NAME = ".writer.lock"
ENDS_PATH = "meta/episode_ends"
INFO_PATH = "meta/episode_info"
STATS_PATH = "meta/episode_stats"
IMAGE_FRAMES_PER_SHARD = 64  # 64 x 480x640x3 ~ 59 MB per shard before compression
LOWDIM_CHUNK_STEPS = 1024
META_CHUNK_ROWS = 1024
_ENDS_FILL = -1  # an episode_ends entry that was never written reads as -1 -> "not committed"
# Image keys use the store's image_codec (codecs.image_codec_kwargs); depth stays lossless lz4 (JPEG would
# smear depth edges); low-dim compresses well with zstd.
_DEPTH_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")
_LOWDIM_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")

_CREATE_HINT = ("create one with TrajectoryStore.create(path, schema) (the recorder does this: "
                "`robot-stack up <profile> store=...`) or point store= at an existing store")


def is_image_key(key: str) -> bool:
    return key.startswith(IMAGE_PREFIX) or key.startswith(DEPTH_PREFIX)


@dataclass
class RecoveryReport:
    """What opening a store in mode "a" cut back: everything past the last committed episode end."""

    path: str
    committed_episodes: int
    committed_steps: int
    dropped_steps: dict[str, int] = field(default_factory=dict)  # data key -> uncommitted steps removed
    dropped_episode_entries: int = 0  # trailing meta/episode_ends entries that were not (validly) committed
    dropped_meta_rows: int = 0  # meta/episode_info rows past n_episodes
    removed_temp_files: int = 0  # zarr's *.partial temp files left by a killed writer

    @property
    def dropped_anything(self) -> bool:
        return bool(any(self.dropped_steps.values()) or self.dropped_episode_entries or self.dropped_meta_rows
                    or self.removed_temp_files)

    def __str__(self) -> str:
        steps = {k: v for k, v in self.dropped_steps.items() if v}
        return (f"store {self.path}: recovered to {self.committed_episodes} committed episodes "
                f"({self.committed_steps} steps); dropped uncommitted steps {steps}, "
                f"{self.dropped_episode_entries} invalid episode_ends entries, {self.dropped_meta_rows} meta rows, "
                f"{self.removed_temp_files} temp files")


def _fsync_path(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError:
        return  # e.g. an all-fill-value chunk that zarr chose not to write
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TrajectoryStore:
    """A zarr v3 trajectory store. Use the classmethods `create`, `open`, `open_or_create`.

    mode "r": read-only, never modifies the store, takes no lock; sees committed episodes as of the last refresh().
    mode "a": the single writer (holds <store>/.writer.lock); opening runs recovery (see module docstring).
    One object is meant for one thread (the recorder's callback thread, the learner's loader); it is not locked.
    """

    def __init__(self, path: Path, schema: StoreSchema, mode: str, fsync: bool, lock_fd: int | None):
        self.path = path
        self.schema = schema
        self.mode = mode
        self.fsync = fsync
        self.recovery: RecoveryReport | None = None
        self._lock_fd = lock_fd
        self._zstore = LocalStore(str(path), read_only=(mode == "r"))
        self._group = zarr.open_group(self._zstore, mode="r" if mode == "r" else "r+", zarr_format=3)
        self._arrays: dict[str, zarr.Array] = {}
        self._ends = np.zeros(0, dtype=np.int64)
        self._meta: list[EpisodeMeta] = []
        self._active_writer = None  # the EpisodeWriter currently writing past the committed end
        self._closed = False
        self._edits: dict = _edits.load(path)
        self._edits_mtime_ns = _edits.mtime_ns(path)
        self._partials: dict[int, dict] = {}  # episode -> partial stats (committed rows never change)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def create(cls, path, schema: StoreSchema, exist_ok: bool = False, *, fsync: bool = True) -> TrajectoryStore:
        """Create an empty store and open it in append mode. With exist_ok, an existing store with a
        compatible schema is opened instead (StoreSchemaError if it differs)."""
        check_zarr_version()
        path = Path(path).absolute()
        if path.exists():
            if _looks_like_store(path):
                if not exist_ok:
                    raise StoreError(f"{path} already is a robot_stack store; open it with "
                                     "TrajectoryStore.open(path, mode='a') or use open_or_create")
                return cls._open_existing_compatible(path, schema, fsync)
            if not path.is_dir() or any(path.iterdir()):
                raise StoreError(f"{path} exists and is not an empty directory nor a robot_stack store; "
                                 "choose a new path for the store")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Build the whole group in a sibling temp dir, then rename: a crash during creation never leaves a
        # half-created store at `path` (rename of a dir onto a missing or empty dir is atomic on POSIX).
        tmp = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
        try:
            _init_group(tmp, schema)
            if fsync:
                for root, _dirs, files in os.walk(tmp):
                    for f in files:
                        _fsync_path(Path(root) / f)
                    _fsync_path(Path(root))
            try:
                os.rename(tmp, path)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise StoreError(f"{path} appeared while the store was being created; "
                                     "another process is creating it, open it instead") from e
                raise
            if fsync:
                _fsync_path(path.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("created store %s (%d features)", path, len(schema.features))
        return cls.open(path, mode="a", fsync=fsync)

    @classmethod
    def open(cls, path, mode: str = "r", *, fsync: bool = True) -> TrajectoryStore:
        """Open an existing store: mode "r" read-only (never modifies), "a" append (locks, runs recovery)."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' (read-only) or 'a' (append), got {mode!r}")
        check_zarr_version()
        path = Path(path).absolute()
        if not path.exists():
            # An `.old-*` is always a complete store (ops.compact renames it to `.trash-*` before deleting), so
            # the newest one is the original of the interrupted swap; older ones are leftovers of earlier runs.
            olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime_ns)
            news = sorted(path.parent.glob(f".{path.name}.compact-*"))
            if olds:  # a compact was interrupted between its two renames (ops.compact)
                others = f" (older leftovers {[str(o) for o in olds[:-1]]} are removed by that compact)" \
                    if len(olds) > 1 else ""
                raise StoreError(f"{path} does not exist but a compaction was interrupted mid-swap: the original is "
                                 f"{olds[-1]} and the compacted copy {news[-1] if news else '(missing)'}; rename the "
                                 f"original back (mv {olds[-1]} {path}) and run `robot-stack store compact` "
                                 f"again{others}")
            raise StoreError(f"{path} does not exist; {_CREATE_HINT}")
        if not _looks_like_store(path):
            raise StoreError(f"{path} is not a robot_stack store (no zarr group with {ENDS_PATH}); {_CREATE_HINT}")
        lock_fd = _acquire_lock(path) if mode == "a" else None  # raises StoreError on read-only media
        try:
            attrs = zarr.open_group(LocalStore(str(path), read_only=True), mode="r", zarr_format=3).attrs.asdict()
            schema = _schema_from_attrs(path, attrs)
            _codecs.ensure_readable(path, schema.image_codec)
            store = cls(path, schema, mode, fsync, lock_fd)
            if mode == "a":
                store.recovery = store._recover()
            else:
                store.refresh()
        except BaseException:
            if lock_fd is not None:
                _release_lock(lock_fd)
            raise
        return store

    @classmethod
    def open_or_create(cls, path, schema: StoreSchema, *, fsync: bool = True) -> TrajectoryStore:
        """Append mode on an existing store (StoreSchemaError if its schema differs) or a new one."""
        path = Path(path).absolute()
        if path.exists() and _looks_like_store(path):
            return cls._open_existing_compatible(path, schema, fsync)
        return cls.create(path, schema, exist_ok=True, fsync=fsync)

    @classmethod
    def _open_existing_compatible(cls, path: Path, schema: StoreSchema, fsync: bool) -> TrajectoryStore:
        store = cls.open(path, mode="a", fsync=fsync)
        try:
            store.schema.check_compatible(schema)
        except StoreSchemaError as e:
            store.close()
            raise StoreSchemaError(f"{path}: {e}") from None
        if store.schema.calibration_ids != schema.calibration_ids:
            log.warning("store %s was created with calibration ids %s, the rig now has %s; episodes keep "
                        "the store's ids until per-episode calibration lands", path,
                        store.schema.calibration_ids, schema.calibration_ids)
        return store

    # ------------------------------------------------------------------ episode table
    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """(n_episodes,) int64 exclusive end step of each committed episode (a copy)."""
        return self._ends.copy()

    @property
    def writable(self) -> bool:
        return self.mode == "a" and not self._closed

    def _scan(self) -> tuple[np.ndarray, int, dict[str, int]]:
        """Read the raw tables and return (validated committed ends, info rows, data lengths).

        Order matters: episode_ends is read FIRST, then the data arrays and meta rows, which the writer
        always extends before it appends an end; so everything a valid end points at exists.
        """
        raw = np.asarray(self._group[ENDS_PATH][:], dtype=np.int64)
        self._arrays = {k: self._group[f"data/{k}"] for k in self.schema.features}
        lengths = {k: int(a.shape[0]) for k, a in self._arrays.items()}
        n_info = int(self._group[INFO_PATH].shape[0])
        limit = min(lengths.values()) if lengths else 0
        prev = np.concatenate([[0], raw[:-1]])
        ok = (raw > prev) & (raw <= limit)  # strictly increasing, non-empty episodes, data present
        n_valid = int(np.argmin(ok)) if not ok.all() else len(raw)
        n_valid = min(n_valid, n_info)  # an end without its metadata row is not committed either
        return raw[:n_valid], len(raw), lengths

    def refresh(self) -> int:
        """Re-read the episode table (a reader tailing a store being written); returns #newly visible episodes."""
        self._check_open()
        self._reload_edits()
        if self._active_writer is not None:
            return 0  # our own writer is mid-episode; the table only changes when it commits
        old = self.n_episodes
        ends, _, _ = self._scan()
        if len(ends) < old or (old and ends[old - 1] != self._ends[old - 1]):
            # Committed episodes never change; this only happens if the store was replaced underneath us.
            raise StoreError(f"{self.path}: the committed episode table shrank or changed ({old} -> {len(ends)} "
                             "episodes); was the store deleted or rewritten? reopen it")
        if len(ends) > old:
            rows = self._group[INFO_PATH][old:len(ends)]
            self._meta.extend(EpisodeMeta.loads(str(r)) for r in np.atleast_1d(rows))
        self._ends = ends
        return len(ends) - old

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> RecoveryReport | None:
        """Cut back everything past the last committed end; returns a report if anything was dropped."""
        ends, n_raw, lengths = self._scan()
        self._ends = np.zeros(0, dtype=np.int64)
        self._meta = []
        report = self._cut_back(ends, n_raw, lengths)
        report.removed_temp_files = self._remove_temp_files()
        self.refresh()
        if report.dropped_anything:
            log.warning("%s", report)
            return report
        return None

    def _cut_back(self, ends: np.ndarray, n_raw: int, lengths: dict[str, int]) -> RecoveryReport:
        n_ep = len(ends)
        end = int(ends[-1]) if n_ep else 0
        report = RecoveryReport(path=str(self.path), committed_episodes=n_ep, committed_steps=end)
        for key, arr in self._arrays.items():
            report.dropped_steps[key] = lengths[key] - end
            if lengths[key] > end:
                arr.resize((end, *arr.shape[1:]))
        info = self._group[INFO_PATH]
        if info.shape[0] > n_ep:
            report.dropped_meta_rows = int(info.shape[0]) - n_ep
            info.resize((n_ep,))
        st = self._stats_array()
        if st is not None and st.shape[0] > n_ep:
            report.dropped_meta_rows = max(report.dropped_meta_rows, int(st.shape[0]) - n_ep)
            st.resize((n_ep,))
        if n_raw > n_ep:
            ends_arr = self._group[ENDS_PATH]
            report.dropped_episode_entries = n_raw - n_ep
            # Reset the dropped entries to the fill value before shrinking: zarr keeps a partially covered
            # chunk as is, and a stale end there would reappear as "committed" when the array grows again
            # and the next commit crashes between the shape update and the chunk write.
            ends_arr[n_ep:n_raw] = _ENDS_FILL
            ends_arr.resize((n_ep,))
        if self.fsync and report.dropped_anything:
            self._fsync_tree_meta()
        return report

    def _remove_temp_files(self) -> int:
        n = 0
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                if f.endswith(".partial"):  # zarr LocalStore's atomic-write temp files (writer was killed)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(root, f))
                        n += 1
        return n

    def _fsync_tree_meta(self) -> None:
        for rel in [*(f"data/{k}" for k in self.schema.features), INFO_PATH, STATS_PATH, ENDS_PATH]:
            _fsync_path(self.path / rel / "zarr.json")
            _fsync_path(self.path / rel)

    # ------------------------------------------------------------------ writing
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again")

    def _require_writable(self) -> None:
        self._check_open()
        if self.mode != "a":
            raise StoreError(f"store {self.path} is open read-only; open it with mode='a' to append")

    def append_episode(self, data: dict[str, np.ndarray], meta: EpisodeMeta | dict) -> int:
        """Validate, write and commit one whole episode; returns its index.

        data: {key: (T, *spec.shape)} for every schema key, equal T >= 1; NaN/inf in action/state is refused.
        """
        self._require_writable()
        if self._active_writer is not None:
            raise StoreError("an EpisodeWriter is writing to this store; commit or discard it before append_episode")
        meta = EpisodeMeta.from_any(meta)
        cols, n = validate_columns(self.schema.features, data)
        if n == 0:
            raise StoreSchemaError("episode has 0 steps; nothing to append")
        start = self.n_steps
        try:
            self._write_steps(cols, start)
            return self._commit_episode(meta, start, n)
        except BaseException:
            self._discard_uncommitted_after_error()
            raise

    def _discard_uncommitted_after_error(self) -> None:
        """Best effort: on a full disk the truncation can fail too; the next open in mode "a" cuts back then."""
        try:
            self._discard_uncommitted()
        except Exception as e:  # noqa: BLE001 - the original error is the one the caller must see
            log.error("could not cut back the uncommitted steps of %s (%r); reopening the store in mode 'a' "
                      "will (nothing committed is affected)", self.path, e)

    def _write_steps(self, cols: dict[str, np.ndarray], start: int) -> None:
        """Write (n, *shape) columns at [start, start+n) past the committed end (step 1 of the protocol)."""
        with _disk_errors(self.path):
            for key, col in cols.items():
                arr = self._arrays[key]
                stop = start + len(col)
                if arr.shape[0] != stop:
                    arr.resize((stop, *arr.shape[1:]))
                arr[start:stop] = col
            # Inside _disk_errors: a test's fault hook raising ENOSPC here reads like a real full disk.
            crash_point("data_written")

    def _commit_episode(self, meta: EpisodeMeta, start: int, n: int) -> int:
        """Steps 2-4 of the commit protocol for data already written at [start, start+n)."""
        if start != self.n_steps:
            raise StoreError(f"internal: episode starts at {start} but the committed end is {self.n_steps}")
        if meta.end_time_ns is None:
            meta = meta.replace(end_time_ns=time.time_ns())
        if meta.episode_id is None:
            meta = meta.replace(episode_id=uuid.uuid4().hex)
        end, idx = start + n, self.n_episodes
        with _disk_errors(self.path):
            if self.fsync:
                for key, arr in self._arrays.items():
                    self._fsync_steps(f"data/{key}", arr, start, end)
            crash_point("data_fsynced")
            # Partial statistics are computed from what was written (read back: low-dim only, a few KB), so
            # they describe exactly the bytes a reader will see.
            partial = {k: _stats.partial_stats(self._arrays[k][start:end]) for k in _stats.stats_keys(self.schema.features)}
            st = self._stats_array(create=True)
            if st.shape[0] != idx + 1:
                st.resize((idx + 1,))
            st[idx] = _stats.dumps(partial)
            if self.fsync:
                self._fsync_steps(STATS_PATH, st, idx, idx + 1)
            crash_point("stats_row")
            info = self._group[INFO_PATH]
            if info.shape[0] != idx + 1:
                info.resize((idx + 1,))
            info[idx] = meta.dumps()
            if self.fsync:
                self._fsync_steps(INFO_PATH, info, idx, idx + 1)
            crash_point("meta_row")
            # LAST: the commit marker. Until this chunk lands, the episode does not exist for anyone.
            ends_arr = self._group[ENDS_PATH]
            ends_arr.resize((idx + 1,))
            crash_point("ends_resized")
            ends_arr[idx] = end
        self._partials[idx] = partial
        # The episode is committed now (other processes may already see it): update our view before the
        # fsync below, so that an fsync error cannot make a later discard cut a committed episode.
        self._ends = np.append(self._ends, np.int64(end))
        self._meta.append(meta)
        if self.fsync:
            with _disk_errors(self.path):
                self._fsync_steps(ENDS_PATH, ends_arr, idx, idx + 1)
        crash_point("committed")
        log.debug("committed episode %d: steps [%d, %d) source=%s", idx, start, end, meta.source)
        return idx

    def _fsync_steps(self, rel: str, arr: zarr.Array, start: int, stop: int) -> None:
        """fsync the chunk (or shard) files holding time steps [start, stop), the array's zarr.json and
        every directory on the way (the rename that zarr's atomic write did must be durable too)."""
        base = self.path / rel
        grid_len = int((arr.shards or arr.chunks)[0])
        tail = ["0"] * (arr.ndim - 1)  # chunked only in time: every other grid index is 0
        dirs: set[Path] = {base, base.parent}
        for c in range(start // grid_len, (stop - 1) // grid_len + 1):
            f = base.joinpath("c", str(c), *tail)
            _fsync_path(f)
            d = f.parent
            while d != base:
                dirs.add(d)
                d = d.parent
        _fsync_path(base / "zarr.json")
        for d in sorted(dirs, key=lambda p: -len(p.parts)):
            _fsync_path(d)

    def _discard_uncommitted(self) -> None:
        """Truncate everything past the committed end (an aborted append or EpisodeWriter.discard)."""
        ends, n_raw, lengths = self._scan()
        if len(ends) != self.n_episodes:
            raise StoreError(f"internal: committed table changed under the writer ({self.n_episodes} -> {len(ends)})")
        self._cut_back(ends, n_raw, lengths)

    # ------------------------------------------------------------------ reading
    def episode_slice(self, i: int) -> slice:
        """Step range of committed episode i (negative i counts from the end)."""
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range: the store has {n} committed episodes")
        i %= n
        return slice(int(self._ends[i - 1]) if i else 0, int(self._ends[i]))

    def recorded_meta(self, i: int) -> EpisodeMeta:
        """The committed metadata as recorded, without corrections."""
        self.episode_slice(i)
        return self._meta[i]

    def episode_meta(self, i: int) -> EpisodeMeta:
        """The committed metadata, with `success` as a person corrected it (set_success), if they did."""
        self.episode_slice(i)  # range check with a clear message
        m = self._meta[i]
        labels = self._edits["labels"]
        if labels:
            label = labels.get(self._uid(m, i))
            if label is not None and label != m.success:
                return m.replace(success=label)
        return m

    def episodes(self, source: str | None = None, success: bool | None = None, task: str | None = None,
                 split: str | None = None, include_excluded: bool = False) -> list[int]:
        """Indices of committed episodes matching every given filter (None = any).

        Tombstoned (excluded) episodes are left out unless include_excluded; split: "train" | "val" (needs a
        split rule, see set_split)."""
        excluded = set() if include_excluded else self.excluded_episodes()
        if split is not None and split not in _edits.SPLITS:
            raise ValueError(f"split must be one of {_edits.SPLITS} or None, got {split!r}")
        return [i for i, m in enumerate(self._meta)
                if (source is None or m.source == source)
                and (success is None or self.episode_meta(i).success == success)
                and (task is None or m.task == task)
                and i not in excluded
                and (split is None or self.split_of(i) == split)]

    # ------------------------------------------------------------------ curation (edits.json)
    def episode_uid(self, i: int) -> str:
        """EpisodeMeta.episode_id, or a positional name for episodes committed before ids existed."""
        self.episode_slice(i)
        return self._uid(self._meta[i], i)

    def _uid(self, m: EpisodeMeta, i: int) -> str:
        return m.episode_id or f"index:{i % self.n_episodes}"

    def _reload_edits(self) -> None:
        mt = _edits.mtime_ns(self.path)
        if mt != self._edits_mtime_ns:
            self._edits, self._edits_mtime_ns = _edits.load(self.path), mt

    def excluded_episodes(self) -> set[int]:
        """Indices of tombstoned episodes (as of the last refresh/edit)."""
        ex = set(self._edits["excluded"])
        if not ex:
            return set()
        return {i for i in range(self.n_episodes) if self.episode_uid(i) in ex}

    def exclude(self, episodes, *, undo: bool = False) -> None:
        """Tombstone episodes (they vanish from episodes(), stats() and the sampler, but stay on disk until
        compact); undo=True brings them back. Works while a recorder appends (own lock, see edits.py)."""
        self._check_open()
        uids = [self.episode_uid(int(i)) for i in episodes]
        with _edits.editing(self.path) as d:
            cur = list(d["excluded"])
            if undo:
                d["excluded"] = [u for u in cur if u not in set(uids)]
            else:
                d["excluded"] = cur + [u for u in uids if u not in set(cur)]
        self._edits, self._edits_mtime_ns = _edits.load(self.path), _edits.mtime_ns(self.path)
        log.info("%s episodes %s in %s", "included" if undo else "excluded", list(episodes), self.path)

    def set_success(self, episodes, success: bool | None, *, by: str = "operator") -> None:
        """A person's verdict on episodes' success, which replaces the recorded label (a practice attempt's judge,
        a demo's own) in episode_meta() and everything that reads it: the success classifier's training frames and
        the learner's rewards for episodes it loads from now on. None drops the correction. Like exclude(), an
        undoable edit in edits.json (own lock, safe while a recorder appends); the committed metadata is untouched."""
        self._check_open()
        if success is not None and not isinstance(success, bool):
            raise ValueError(f"success must be True, False or None (drop the correction), got {success!r}")
        uids = [self.episode_uid(int(i)) for i in episodes]
        with _edits.editing(self.path) as d:
            for u in uids:
                if success is None:
                    d["labels"].pop(u, None)
                else:
                    d["labels"][u] = success
        self._edits, self._edits_mtime_ns = _edits.load(self.path), _edits.mtime_ns(self.path)
        log.info("%s: success of episodes %s set to %s", by, list(episodes), success)

    def corrected_episodes(self) -> dict[int, bool]:
        """Episode index -> the corrected success label, for every episode a person relabelled."""
        labels = self._edits["labels"]
        if not labels:
            return {}
        return {i: labels[u] for i in range(self.n_episodes) if (u := self.episode_uid(i)) in labels}

    def include(self, episodes) -> None:
        """Undo exclude()."""
        self.exclude(episodes, undo=True)

    def set_split(self, val_fraction: float, seed: int = 0) -> None:
        """Store the train/validation split rule: an episode is "val" iff hash(seed, episode_id) < val_fraction.
        Stored as metadata, so the assignment of existing episodes never changes as the store grows."""
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self._check_open()
        with _edits.editing(self.path) as d:
            d["split"] = {"seed": int(seed), "val_fraction": float(val_fraction)}
        self._edits, self._edits_mtime_ns = _edits.load(self.path), _edits.mtime_ns(self.path)

    @property
    def split_rule(self) -> dict | None:
        return self._edits.get("split")

    def split_of(self, i: int) -> str:
        """"train" or "val" for episode i; without a split rule every episode is "train"."""
        rule = self._edits.get("split")
        if not rule:
            return "train"
        return _edits.split_of(self.episode_uid(i), rule["seed"], rule["val_fraction"])

    def info(self) -> dict:
        """Root attributes (schema, robot_stack_version, created time) plus counts, for `robot-stack store info`."""
        attrs = zarr.open_group(LocalStore(str(self.path), read_only=True), mode="r", zarr_format=3).attrs.asdict()
        ex = self.excluded_episodes()
        return {**attrs, "path": str(self.path), "episodes": self.n_episodes, "steps": self.n_steps,
                "excluded_episodes": sorted(ex), "split": self.split_rule,
                "corrected_labels": {str(k): v for k, v in sorted(self.corrected_episodes().items())}}

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """(stop - start, *shape) steps of one key; only the committed range [0, n_steps) is readable."""
        self._check_open()
        if key not in self.schema.features:
            raise KeyError(f"{key!r} is not a feature of store {self.path}; features: {sorted(self.schema.features)}")
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_steps:
            raise IndexError(f"read({key!r}, {start}, {stop}) is outside the committed steps [0, {self.n_steps}); "
                             "call refresh() to see newly committed episodes")
        try:
            return self._arrays[key][start:stop]
        except Exception as e:  # noqa: BLE001 - one retry, see below
            # A shard read is two file reads (index, then chunk bytes); if the writer atomically replaced the
            # shard in between, the bytes of committed frames are identical in both versions, but be safe
            # against a decode error: re-open the array and read again once.
            log.debug("retrying read of %s[%d:%d] after %r", key, start, stop, e)
            self._arrays[key] = self._group[f"data/{key}"]
            return self._arrays[key][start:stop]

    def get_episode(self, i: int, keys=None) -> dict[str, np.ndarray]:
        """{key: (T_i, *shape)} for committed episode i (all schema keys unless keys is given)."""
        s = self.episode_slice(i)
        keys = list(self.schema.features) if keys is None else list(keys)
        return {k: self.read(k, s.start, s.stop) for k in keys}

    def _stats_array(self, create: bool = False) -> zarr.Array | None:
        try:
            return self._group[STATS_PATH]
        except KeyError:
            if not create:
                return None
            # stores created before per-episode statistics existed: add the array on the first commit
            arr = _create_stats_array(self._group["meta"])
            if self.n_episodes:
                arr.resize((self.n_episodes,))
            return arr

    def episode_partial_stats(self, i: int) -> dict:
        """{key: partial summary} of committed episode i (stats.py); computed from the data for episodes that
        were committed before the store kept them (or whose row is missing)."""
        s = self.episode_slice(i)
        i %= self.n_episodes
        if i in self._partials:
            return self._partials[i]
        part = None
        st = self._stats_array()
        if st is not None and st.shape[0] > i:
            part = _stats.loads(str(st[i]))
        keys = _stats.stats_keys(self.schema.features)
        if not part or any(k not in part for k in keys):
            part = {k: _stats.partial_stats(self.read(k, s.start, s.stop)) for k in keys}
        self._partials[i] = part
        return part

    def stats(self, key: str, episodes=None, *, exact: bool = False) -> dict[str, np.ndarray]:
        """Per-dimension statistics of one key over committed, non-excluded episodes (or the given indices),
        float64: mean, std, min, max, q01, q99 each of shape spec.shape; plus count (number of steps).

        Float keys combine the per-episode partials written at commit (q01/q99 exact while episodes are
        <= stats.SKETCH_SIZE steps, sketch-approximate beyond); exact=True or non-float keys read the data."""
        if key not in self.schema.features:
            raise KeyError(f"{key!r} is not a feature of store {self.path}; features: {sorted(self.schema.features)}")
        eps = self.episodes() if episodes is None else [int(i) for i in episodes]
        if not eps:
            raise StoreError(f"no committed (non-excluded) episodes to compute statistics of {key!r} over")
        shape = tuple(self.schema.features[key].shape)
        if not exact and key in _stats.stats_keys(self.schema.features):
            return _stats.combine([self.episode_partial_stats(i)[key] for i in eps], shape)
        x = np.concatenate([self.read(key, s.start, s.stop) for s in (self.episode_slice(i) for i in eps)])
        x = x.astype(np.float64, copy=False)
        q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
        return {"mean": x.mean(axis=0), "std": x.std(axis=0), "min": x.min(axis=0), "max": x.max(axis=0),
                "q01": q01, "q99": q99, "count": np.int64(len(x))}

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Discard an unfinished EpisodeWriter's steps and release the writer lock. Idempotent."""
        if self._closed:
            return
        if self._active_writer is not None:
            log.warning("closing store %s with an uncommitted episode (%d steps); discarding it",
                        self.path, self._active_writer.n_steps)
            self._active_writer.discard()
        self._closed = True
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.path)!r}, mode={self.mode!r}, episodes={self.n_episodes}, steps={self.n_steps})"


# ---------------------------------------------------------------------- helpers
def _looks_like_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() and (path / ENDS_PATH / "zarr.json").is_file()


def _schema_from_attrs(path: Path, attrs: dict) -> StoreSchema:
    if "features" not in attrs or "schema_version" not in attrs:
        raise StoreError(f"{path} is a zarr group but has no robot_stack schema attributes; {_CREATE_HINT}")
    version = int(attrs["schema_version"])
    if version > 1:
        raise StoreError(f"{path} has store schema_version {version}, this robot_stack "
                         f"({robot_stack.__version__}) reads version 1; upgrade robot_stack")
    return StoreSchema.from_json(attrs)


def _init_group(path: Path, schema: StoreSchema) -> None:
    root = zarr.open_group(LocalStore(str(path)), mode="w", zarr_format=3)
    data = root.create_group("data")
    for key, spec in schema.features.items():
        shape = (0, *spec.shape)
        if is_image_key(key):
            frame = (1, *spec.shape)
            codec = (_codecs.image_codec_kwargs(schema.image_codec) if key.startswith(IMAGE_PREFIX)
                     else {"compressors": _DEPTH_CODEC})
            data.create_array(key, shape=shape, chunks=frame, shards=(IMAGE_FRAMES_PER_SHARD, *spec.shape),
                              dtype=spec.dtype, fill_value=0, **codec)
        else:
            data.create_array(key, shape=shape, chunks=(LOWDIM_CHUNK_STEPS, *spec.shape), dtype=spec.dtype,
                              compressors=_LOWDIM_CODEC, fill_value=0)
    meta = root.create_group("meta")
    meta.create_array("episode_info", shape=(0,), chunks=(META_CHUNK_ROWS,), dtype=str)
    _create_stats_array(meta)
    meta.create_array("episode_ends", shape=(0,), chunks=(META_CHUNK_ROWS,), dtype="int64", fill_value=_ENDS_FILL)
    now_ns = time.time_ns()
    # Root attributes written last: _looks_like_store needs meta/episode_ends, _schema_from_attrs these.
    root.attrs.update({
        **schema.to_json(),
        "robot_stack_version": robot_stack.__version__,
        "created_time_ns": now_ns,
        "created_time_iso": _dt.datetime.fromtimestamp(now_ns / 1e9, tz=_dt.timezone.utc).isoformat(),
    })


def _create_stats_array(meta_group) -> zarr.Array:
    return meta_group.create_array("episode_stats", shape=(0,), chunks=(1,), dtype=str)


@contextlib.contextmanager
def _disk_errors(path: Path):
    """Turn a full disk / read-only filesystem into an operator-facing StoreError (the cause stays chained)."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(
                f"disk full while writing to store {path} ({e.strerror}); the episode being written is lost, "
                "committed episodes are intact: free space on that disk (or move store= to a bigger disk), "
                "then reopen the store in mode 'a' (it cuts back the partial episode)") from e
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(
                f"cannot write to store {path}: {e.strerror}; the disk was remounted read-only or permissions "
                "changed: check the disk (dmesg) and reopen the store in mode 'a'") from e
        raise


def _acquire_lock(path: Path) -> int:
    lock_path = path / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(
                f"cannot open {path} for appending: {e.strerror} ({lock_path}); the store is on read-only media or "
                "not writable by this user: open it read-only with mode='r', or copy it to a writable disk and "
                "record there") from e
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise StoreLockedError(
            f"{path} is already open for writing (lock {lock_path} held by pid {holder}); only one writer per "
            "store: stop the other recorder, or open this store read-only with mode='r'") from None
    # The pid is informational only (for the message above); the flock itself is the lock.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)
