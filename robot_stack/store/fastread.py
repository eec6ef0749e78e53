"""Read a step range of one store array by decoding its chunk files directly with numcodecs.

Why: zarr-python's per-chunk machinery (async event loop, codec pipeline, one index read + one chunk read
per frame) costs ~3 ms per image chunk here, far more than decoding it (~0.1 ms for lz4). The sampler loads
whole episodes, so reading each shard file once and decoding its frames in a loop is ~5x faster
(benchmarks/results/store.md). Also: one open()+read() per shard is a consistent snapshot even while the
writer atomically replaces that shard file (zarr reads the index and the chunk bytes separately).

Only the layouts this store writes are handled (time-only chunking; blosc or no compressor, or one JPEG per
frame (codecs.JpegCodec); optional sharding with the index at the end); anything else returns None and the caller reads through zarr.
"""

from __future__ import annotations

import json
from pathlib import Path

import numcodecs
import numpy as np

from robot_stack.store import codecs as _codecs

_EMPTY = np.uint64(2**64 - 1)


class ArrayReader:
    """Direct reader for <store>/data/<key>; `read(start, stop)` -> (stop-start, *shape) or None if unsupported."""

    def __init__(self, array_dir: Path):
        self.dir = Path(array_dir)
        meta = json.loads((self.dir / "zarr.json").read_text())
        self.dtype = np.dtype(meta["data_type"])
        self.fill = meta.get("fill_value", 0) or 0
        self.ok = False
        codecs = meta["codecs"]
        self.frame_shape = tuple(meta["shape"][1:])
        sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
        if meta.get("chunk_key_encoding", {}).get("name", "default") != "default" or sep != "/":
            return
        outer = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        if codecs and codecs[0]["name"] == "sharding_indexed":
            cfg = codecs[0]["configuration"]
            if cfg.get("index_location", "end") != "end":
                return
            idx_codecs = [c["name"] for c in cfg["index_codecs"]]
            if idx_codecs not in (["bytes"], ["bytes", "crc32c"]):
                return
            self.index_tail = 4 if "crc32c" in idx_codecs else 0
            self.inner = tuple(cfg["chunk_shape"])
            inner_codecs = cfg["codecs"]
            self.shard_len = outer[0]
        else:
            self.inner, inner_codecs, self.shard_len = outer, codecs, None
        if tuple(self.inner[1:]) != self.frame_shape:
            return  # chunked in more than time
        names = [c["name"] for c in inner_codecs]
        if names == [_codecs.CODEC_NAME] and self.inner[0] == 1:  # one JPEG per frame (codecs.JpegCodec)
            self._decomp = _codecs.decode_frame
            self.chunk_len = 1
            self.ok = True
            return
        if names[0] != "bytes" or inner_codecs[0].get("configuration", {}).get("endian", "little") != "little":
            return
        if names[1:] not in ([], ["blosc"], ["zstd"]):
            return
        self._decomp = {"blosc": numcodecs.blosc.decompress,
                        "zstd": numcodecs.Zstd().decode}.get(names[1]) if len(names) > 1 else bytes
        self.chunk_len = self.inner[0]
        self.ok = True

    def read(self, start: int, stop: int) -> np.ndarray | None:
        if not self.ok:
            return None
        out = np.empty((stop - start, *self.frame_shape), dtype=self.dtype)
        step_bytes = out[0:1].nbytes if stop > start else 0
        flat = out.reshape(len(out), -1).view(np.uint8).reshape(-1)
        tail = ["0"] * len(self.frame_shape)
        if self.shard_len is None:
            for c in range(start // self.chunk_len, (stop - 1) // self.chunk_len + 1):
                c0 = c * self.chunk_len
                try:
                    raw = (self.dir / "c" / str(c)).joinpath(*tail).read_bytes()
                    arr = np.frombuffer(self._decomp(raw), dtype=np.uint8)
                except FileNotFoundError:
                    arr = None
                self._place(flat, arr, c0, self.chunk_len, start, stop, step_bytes)
            return out
        per_shard = self.shard_len // self.chunk_len
        for s in range(start // self.shard_len, (stop - 1) // self.shard_len + 1):
            try:
                buf = (self.dir / "c" / str(s)).joinpath(*tail).read_bytes()
            except FileNotFoundError:
                buf = None
            if buf is not None:
                end_idx = len(buf) - self.index_tail
                index = np.frombuffer(buf, dtype="<u8", count=2 * per_shard, offset=end_idx - 16 * per_shard)
                index = index.reshape(per_shard, 2)
            for j in range(per_shard):
                c0 = s * self.shard_len + j * self.chunk_len
                if c0 + self.chunk_len <= start or c0 >= stop:
                    continue
                arr = None
                if buf is not None and index[j, 0] != _EMPTY:
                    off, n = int(index[j, 0]), int(index[j, 1])
                    arr = np.frombuffer(self._decomp(buf[off:off + n]), dtype=np.uint8)
                self._place(flat, arr, c0, self.chunk_len, start, stop, step_bytes)
        return out

    def _place(self, flat, arr, c0, clen, start, stop, step_bytes) -> None:
        lo, hi = max(c0, start), min(c0 + clen, stop)
        dst = flat[(lo - start) * step_bytes:(hi - start) * step_bytes]
        if arr is None:  # a chunk zarr did not write because it held only the fill value
            dst.view(self.dtype)[:] = self.fill
        else:
            dst[:] = arr[(lo - c0) * step_bytes:(hi - c0) * step_bytes]
