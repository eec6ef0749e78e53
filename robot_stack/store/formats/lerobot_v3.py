"""LeRobotDataset v3 (lerobot docs/source/lerobot-dataset-v3.mdx; codebase_version "v3.0").

Layout written:

    meta/info.json                             codebase_version, robot_type, fps, totals, path templates,
                                               features {key: {dtype, shape, names[, info]}} (images: dtype
                                               "video" with video.codec/pix_fmt/fps/height/width)
    meta/stats.json                            {key: {min, max, mean, std, count[, q01, q99]}}; images per
                                               channel, shape (3, 1, 1), in [0, 1] (LeRobot's convention)
    meta/tasks.parquet                         task_index + task (pandas index "task", as LeRobot reads it)
    meta/episodes/chunk-000/file-000.parquet   per episode: episode_index, tasks, length, data/chunk_index,
                                               data/file_index, dataset_from_index, dataset_to_index,
                                               videos/<key>/{chunk_index, file_index, from_timestamp,
                                               to_timestamp}, meta/episodes/{chunk_index, file_index},
                                               robot_stack_meta (EpisodeMeta JSON)
    meta/robot_stack.json                      our StoreSchema + every EpisodeMeta (free-form; LeRobot ignores it)
    data/chunk-000/file-000.parquet            one row per frame: index, episode_index, frame_index, timestamp
                                               (= frame_index / fps, s), task_index, every non-image feature
                                               (vectors as fixed-size lists, scalars as plain columns)
    videos/<key>/chunk-000/file-000.mp4        every episode's frames of one camera concatenated, pts =
                                               global frame index at 1/fps; H.264 (libx264) yuv420p, GOP 2

What does not round-trip exactly: images go through lossy H.264 + yuv420p chroma subsampling (PSNR ~30-35 dB
at the default crf 18 on smooth images; `pix_fmt="yuv444p"`, `crf=0` gets close to lossless). Everything else
(state, action, int64 capture/receive timestamps, episode metadata) is exact. One data file and one video file
per camera are written (LeRobot's 100/200 MB shard limits are writing defaults its readers do not need);
depth keys (uint16) go into the parquet as flattened lists, not LeRobot's depth video. The importer follows
the chunk/file indices of meta/episodes, so multi-file foreign datasets read too; foreign "image" (PNG bytes)
features are decoded with imagecodecs; success is unknown for foreign datasets (LeRobot has no field for it).
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from robot_stack.store import StoreSchema
from robot_stack.store.formats._common import (
    META_NAME,
    FormatError,
    Progress,
    Source,
    action_space_guess,
    cameras_of,
    check_exists,
    episode_meta,
    robot_stack_meta,
    schema_from_meta,
)
from robot_stack.types import ACTION_KEY, EE_DELTA_ACTION_NAMES, IMAGE_PREFIX, STATE_KEY, FeatureSpec

log = logging.getLogger(__name__)

FMT = "lerobot_v3"
CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS_PATH = "meta/tasks.parquet"
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
# GOP 2 (LeRobot's default): a random frame decodes from at most one previous frame, so training loaders
# that seek to arbitrary timestamps stay fast.
DEFAULT_GOP = 2


def _video_codec() -> str:
    for name in ("libx264", "h264", "libopenh264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # noqa: BLE001 - a decoder-only build of that name
                continue
    raise FormatError("PyAV has no H.264 or MPEG-4 encoder; install an `av` wheel built with libx264")


def _is_rgb_video(key: str, spec: FeatureSpec) -> bool:
    return key.startswith(IMAGE_PREFIX) and spec.dtype == "uint8" and len(spec.shape) == 3 and spec.shape[2] == 3


def _names(key: str, spec: FeatureSpec, schema: StoreSchema) -> list[str] | None:
    if _is_rgb_video(key, spec):
        return ["height", "width", "channels"]
    if key == ACTION_KEY and spec.shape == (len(EE_DELTA_ACTION_NAMES),) and schema.action_space == "ee_delta":
        return list(EE_DELTA_ACTION_NAMES)
    if key == STATE_KEY and len(spec.shape) == 1 and spec.shape[0] >= 8:
        n_joints = spec.shape[0] - 8  # robot_stack.types: joints + ee xyz + quat xyzw + gripper
        return [f"joint_{j}" for j in range(n_joints)] + ["ee_x", "ee_y", "ee_z", "ee_qx", "ee_qy", "ee_qz",
                                                          "ee_qw", "gripper"]
    return None


# ---------------------------------------------------------------------- arrow helpers
def _arrow_type(spec: FeatureSpec) -> pa.DataType:
    base = pa.from_numpy_dtype(np.dtype(spec.dtype))
    return base if spec.shape == () else pa.list_(base, int(np.prod(spec.shape)))


def _to_arrow(arr: np.ndarray, spec: FeatureSpec) -> pa.Array:
    if spec.shape == ():
        return pa.array(arr)
    flat = np.ascontiguousarray(arr).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), int(np.prod(spec.shape)))


def _from_arrow(col, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(col)
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        values = col.flatten()
        while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
            values = values.flatten()  # LeRobot's Array2D/3D features nest lists
        return values.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(n, *shape)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(n, *shape)


def _tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot writes it from pandas: the task string is the DataFrame index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


# ---------------------------------------------------------------------- stats
class _Stats:
    """Running min/max/mean/std per feature; q01/q99 for low-dim (kept whole: low-dim is small)."""

    def __init__(self):
        self.lowdim: dict[str, list[np.ndarray]] = {}
        self.image: dict[str, list[np.ndarray]] = {}  # per-channel [sum, sumsq, min, max, count]

    def add(self, key: str, arr: np.ndarray, video: bool) -> None:
        if video:
            x = arr.reshape(-1, 3).astype(np.float64) / 255.0
            acc = [x.sum(0), (x * x).sum(0), x.min(0), x.max(0), np.float64(len(arr)), np.float64(len(x))]
            prev = self.image.get(key)
            self.image[key] = acc if prev is None else [
                prev[0] + acc[0], prev[1] + acc[1], np.minimum(prev[2], acc[2]), np.maximum(prev[3], acc[3]),
                prev[4] + acc[4], prev[5] + acc[5]]
        elif arr.dtype.kind in "fiub":
            self.lowdim.setdefault(key, []).append(arr)

    def to_json(self) -> dict:
        out: dict = {}
        for key, parts in self.lowdim.items():
            x = np.concatenate(parts).astype(np.float64)
            q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
            out[key] = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": [len(x)],
                        "q01": q01, "q99": q99}
        for key, (s, ss, mn, mx, n_frames, n_px) in self.image.items():
            mean = s / n_px
            std = np.sqrt(np.maximum(ss / n_px - mean * mean, 0.0))
            out[key] = {k: v.reshape(3, 1, 1) for k, v in (("min", mn), ("max", mx), ("mean", mean), ("std", std))}
            out[key]["count"] = [int(n_frames)]
        return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in out.items()}


# ---------------------------------------------------------------------- export
class _VideoWriter:
    def __init__(self, path: Path, height: int, width: int, fps: Fraction, codec: str, crf: int, pix_fmt: str):
        if pix_fmt == "yuv420p" and (height % 2 or width % 2):
            # 4:2:0 subsampling needs even sides; 4:4:4 keeps odd-sized sim cameras encodable.
            log.info("%s: %dx%d has an odd side; encoding yuv444p instead of yuv420p", path, width, height)
            pix_fmt = "yuv444p"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.pix_fmt, self.time_base = path, pix_fmt, Fraction(1) / fps
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        self.stream.codec_context.time_base = self.time_base
        if codec in ("libx264", "libx265"):
            self.stream.options = {"crf": str(int(crf)), "g": str(DEFAULT_GOP)}
        else:
            self.stream.options = {"g": str(DEFAULT_GOP)}
            self.stream.codec_context.bit_rate = 8_000_000
        self.n_frames = 0

    def add(self, frames: np.ndarray) -> None:
        """frames: (T, H, W, 3) uint8 RGB, appended at pts n_frames..n_frames+T-1."""
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format=self.pix_fmt)
            frame.pts, frame.time_base = self.n_frames, self.time_base
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.n_frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def export(store, out: Path, episodes: list[int], progress: Progress, crf: int = 18, pix_fmt: str = "yuv420p",
           codec: str | None = None) -> Path:
    """Write `episodes` as a LeRobotDataset v3 directory at `out`.

    crf: H.264 constant rate factor (lower = better, 0 = lossless luma); pix_fmt: yuv420p (LeRobot's, widely
    decodable) or yuv444p; codec: PyAV encoder name (default libx264, else another H.264/MPEG-4 encoder).
    """
    schema = store.schema
    fps = Fraction(schema.control_hz).limit_denominator(1001)
    codec = codec or _video_codec()
    video_keys = [k for k, s in schema.features.items() if _is_rgb_video(k, s)]
    data_keys = [k for k in schema.features if k not in video_keys]
    for k in data_keys:
        if k in BOOKKEEPING:
            raise FormatError(f"store feature {k!r} collides with LeRobot's bookkeeping column; rename it")
    tasks: list[str] = []
    for i in episodes:
        if store.episode_meta(i).task not in tasks:
            tasks.append(store.episode_meta(i).task)

    arrow_fields = [pa.field("index", pa.int64()), pa.field("episode_index", pa.int64()),
                    pa.field("frame_index", pa.int64()), pa.field("timestamp", pa.float32()),
                    pa.field("task_index", pa.int64())]
    arrow_fields += [pa.field(k, _arrow_type(schema.features[k])) for k in data_keys]
    data_path = out / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True)
    writer = pq.ParquetWriter(data_path, pa.schema(arrow_fields))
    videos = {k: _VideoWriter(out / VIDEO_PATH.format(video_key=k, chunk_index=0, file_index=0),
                              schema.features[k].shape[0], schema.features[k].shape[1], fps, codec, crf, pix_fmt)
              for k in video_keys}
    stats = _Stats()
    rows: list[dict] = []
    index = 0
    try:
        for new_i, i in enumerate(episodes):
            ep, meta = store.get_episode(i), store.episode_meta(i)
            n = len(ep[ACTION_KEY])
            frame_index = np.arange(n, dtype=np.int64)
            cols = {"index": pa.array(index + frame_index), "episode_index": pa.array(np.full(n, new_i, np.int64)),
                    "frame_index": pa.array(frame_index),
                    "timestamp": pa.array((frame_index / float(fps)).astype(np.float32)),
                    "task_index": pa.array(np.full(n, tasks.index(meta.task), np.int64))}
            cols.update({k: _to_arrow(ep[k], schema.features[k]) for k in data_keys})
            writer.write_table(pa.table(cols, schema=writer.schema))
            row = {"episode_index": new_i, "tasks": [meta.task], "length": n,
                   "data/chunk_index": 0, "data/file_index": 0,
                   "dataset_from_index": index, "dataset_to_index": index + n}
            for k, v in videos.items():
                row.update({f"videos/{k}/chunk_index": 0, f"videos/{k}/file_index": 0,
                            f"videos/{k}/from_timestamp": v.n_frames / float(fps),
                            f"videos/{k}/to_timestamp": (v.n_frames + n) / float(fps)})
                v.add(ep[k])
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                        "robot_stack_meta": meta.dumps()})
            rows.append(row)
            for k in schema.features:
                stats.add(k, ep[k], k in videos)
            index += n
            progress.step()
    finally:
        writer.close()
        for v in videos.values():
            v.close()

    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), out / EPISODES_PATH)
    pq.write_table(_tasks_table(tasks), out / TASKS_PATH)
    features: dict = {}
    for k, spec in schema.features.items():
        if k in videos:
            h, w, c = spec.shape
            features[k] = {"dtype": "video", "shape": [h, w, c], "names": _names(k, spec, schema), "info": {
                "video.height": h, "video.width": w, "video.codec": "h264" if "264" in codec else codec,
                "video.pix_fmt": videos[k].pix_fmt, "video.is_depth_map": False, "video.fps": float(fps),
                "video.channels": c, "has_audio": False}}
        else:
            features[k] = {"dtype": spec.dtype, "shape": list(spec.shape) or [1], "names": _names(k, spec, schema)}
    for k, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                     ("index", "int64"), ("task_index", "int64")):
        features[k] = {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": schema.robot, "total_episodes": len(episodes),
        "total_frames": index, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": float(fps),
        "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None, "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (out / "meta" / "stats.json").write_text(json.dumps(stats.to_json(), indent=4))
    (out / "meta" / f"{META_NAME}.json").write_text(json.dumps(robot_stack_meta(store, episodes), indent=2))
    return out


# ---------------------------------------------------------------------- import
class _VideoReader:
    """Sequential decoder over one concatenated mp4: frames(from_s, n) continues where the last call stopped
    (episodes are read in file order), reopening only to go backwards."""

    def __init__(self, path: Path, fps: float):
        check_exists(path, "a video file named by meta/episodes", FMT)
        self.path, self.fps = path, fps
        self._open()

    def _open(self) -> None:
        self.container = av.open(str(self.path))
        self.it = self.container.decode(video=0)
        self.next_idx = 0  # global index of the next frame the iterator yields
        self.pending = None

    def frames(self, from_s: float, n: int) -> np.ndarray:
        first = int(round(from_s * self.fps))
        if first < self.next_idx:
            self.close()
            self._open()
        out = []
        while len(out) < n:
            frame = next(self.it, None)
            if frame is None:
                break
            idx = int(round(float(frame.time) * self.fps)) if frame.time is not None else self.next_idx
            self.next_idx = idx + 1
            if idx >= first:
                out.append(frame.to_ndarray(format="rgb24"))
        if len(out) != n:
            raise FormatError(f"{self.path} holds {len(out)} frames from t={from_s:.3f} s, the episode needs {n}; "
                              "the video is truncated or does not match meta/episodes, re-export it")
        return np.stack(out)

    def close(self) -> None:
        self.container.close()


class LeRobotSource(Source):
    """A LeRobotDataset v3 directory opened for import.

    Options: robot (used only for a foreign dataset, default: info.json robot_type).
    """

    def __init__(self, src: Path, robot: str | None = None):
        self.src = src
        for rel in ("meta/info.json", "meta/episodes"):
            check_exists(src / rel, rel, FMT)
        info = json.loads((src / "meta" / "info.json").read_text())
        version = str(info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise FormatError(f"{src} is a LeRobot dataset of codebase_version {version!r}; this importer reads "
                              "v3.x: convert it with lerobot's convert_dataset_v21_to_v30 first")
        self.info, self.fps = info, float(info["fps"])
        ep_files = sorted((src / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise FormatError(f"{src}/meta/episodes holds no chunk-*/file-*.parquet; the dataset is incomplete")
        self.episodes_table = pa.concat_tables([pq.read_table(f) for f in ep_files]).sort_by("episode_index")
        rec_path = src / "meta" / f"{META_NAME}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        feats = info.get("features", {})
        self.video_keys = [k for k, f in feats.items() if f.get("dtype") == "video"]
        self.image_keys = [k for k, f in feats.items() if f.get("dtype") == "image"]
        self.schema = schema_from_meta(rec)
        if self.schema is None:
            self.schema = self._derive_schema(feats, robot)
            self.inferred_fields = frozenset({"action_space"} | ({"robot"} if robot is None else set()))
        missing = [k for k in self.schema.features if k not in feats]
        if missing:
            raise FormatError(f"{src}/meta/info.json has no features {missing} that its robot_stack.json lists; "
                              "the export is incomplete, re-export it")
        self.n_episodes = self.episodes_table.num_rows
        self._check_files()
        self._data_file: tuple[Path, pa.Table] | None = None

    def _check_files(self) -> None:
        """Every data/video file meta/episodes names must exist: fail before a store is created, not midway."""
        tmpl = self.info.get("video_path") or VIDEO_PATH
        cols = set(self.episodes_table.column_names)
        needed = set()
        for row in self.episodes_table.to_pylist():
            needed.add(self._data_path(int(row.get("data/chunk_index", 0)), int(row.get("data/file_index", 0))))
            for k in self.video_keys:
                if k not in self.schema.features:
                    continue
                if f"videos/{k}/from_timestamp" not in cols:
                    raise FormatError(f"{self.src}/meta/episodes has no videos/{k}/* columns for video feature "
                                      f"{k!r}; the dataset is incomplete")
                needed.add(self.src / tmpl.format(video_key=k, chunk_index=int(row[f"videos/{k}/chunk_index"]),
                                                  file_index=int(row[f"videos/{k}/file_index"])))
        for path in sorted(needed):
            check_exists(path, "a file named by meta/episodes", FMT)

    def _derive_schema(self, feats: dict, robot: str | None) -> StoreSchema:
        out: dict[str, FeatureSpec] = {}
        first_data = self._data_path(0, 0)
        check_exists(first_data, "data/chunk-000/file-000.parquet", FMT)
        columns = pq.read_schema(first_data)
        for k, f in feats.items():
            if k in BOOKKEEPING:
                continue
            if f["dtype"] in ("video", "image"):
                shape = tuple(f["shape"])
                if f.get("names") and list(f["names"])[:1] == ["channels"]:
                    shape = (shape[1], shape[2], shape[0])  # v2-era channel-first metadata; frames decode HWC
                out[k] = FeatureSpec("uint8", shape)
            elif k in columns.names:
                t = columns.field(k).type
                scalar = not (pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t))
                out[k] = FeatureSpec(f["dtype"], () if scalar else tuple(f["shape"]))
        if ACTION_KEY not in out:
            raise FormatError(f"{self.src} has no 'action' feature (features: {sorted(feats)}); not a policy dataset")
        return StoreSchema(robot=robot or str(self.info.get("robot_type") or "unknown"), control_hz=self.fps,
                           action_space=action_space_guess(int(np.prod(out[ACTION_KEY].shape))),
                           features=out, cameras=cameras_of(out))

    def _data_path(self, chunk: int, file: int) -> Path:
        tmpl = self.info.get("data_path") or DATA_PATH
        return self.src / tmpl.format(chunk_index=chunk, file_index=file)

    def _data(self, chunk: int, file: int) -> pa.Table:
        path = self._data_path(chunk, file)
        if self._data_file is None or self._data_file[0] != path:
            check_exists(path, "a data file named by meta/episodes", FMT)
            self._data_file = (path, pq.read_table(path))
        return self._data_file[1]

    def episodes(self):
        rows = self.episodes_table.to_pylist()
        readers: dict[tuple[str, Path], _VideoReader] = {}
        tmpl = self.info.get("video_path") or VIDEO_PATH
        try:
            for row in rows:
                table = self._data(int(row.get("data/chunk_index", 0)), int(row.get("data/file_index", 0)))
                ep_rows = table.filter(pc.equal(table["episode_index"], row["episode_index"]))
                ep_rows = ep_rows.sort_by("frame_index")
                n = ep_rows.num_rows
                if n != int(row["length"]):
                    raise FormatError(f"{self.src}: episode {row['episode_index']} has {n} frame rows, meta/episodes "
                                      f"says length {row['length']}; the dataset is corrupt")
                data: dict[str, np.ndarray] = {}
                for k, spec in self.schema.features.items():
                    if k in self.video_keys:
                        path = self.src / tmpl.format(video_key=k, chunk_index=int(row[f"videos/{k}/chunk_index"]),
                                                      file_index=int(row[f"videos/{k}/file_index"]))
                        reader = readers.get((k, path))
                        if reader is None:
                            for (key, p), r in list(readers.items()):
                                if key == k:  # this camera moved on to its next file
                                    r.close()
                                    del readers[(key, p)]
                            reader = readers[(k, path)] = _VideoReader(path, self.fps)
                        data[k] = reader.frames(float(row[f"videos/{k}/from_timestamp"]), n)
                    elif k in self.image_keys:
                        import imagecodecs

                        data[k] = np.stack([imagecodecs.imread(d["bytes"]) for d in ep_rows[k].to_pylist()])
                    else:
                        data[k] = _from_arrow(ep_rows[k], spec.shape, spec.dtype)
                rec = row.get("robot_stack_meta")
                tasks = row.get("tasks") or [""]
                yield data, episode_meta(json.loads(rec) if rec else None, FMT, self.src, task=tasks[0])
        finally:
            for r in readers.values():
                r.close()


open_source = LeRobotSource  # the import entry point: its keyword arguments are the import options
