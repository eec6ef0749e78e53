"""Image codecs of the store (StoreSchema.image_codec) and the zarr v3 JPEG codec behind "jpeg".

    "blosc-lz4"    lossless, bit-exact; ~1.0x on camera frames with sensor noise, fastest encode (the default)
    "jpeg"         JPEG quality 95 per frame (~19x smaller on noisy 480x640 frames, ~42 dB PSNR)
    "jpeg-q<N>"    JPEG quality N in [1, 100] (q90: ~36x smaller at 41.8 dB)
    numbers: benchmarks/results/store.md §4

JpegCodec is a zarr v3 ArrayBytesCodec (array -> bytes, in place of the default "bytes" serializer) used as
the inner codec of the image shards: one (1, H, W, 3) uint8 frame per inner chunk -> one JPEG. It is
registered with zarr under CODEC_NAME when this module is imported (robot_stack.store imports it), so any
zarr user who does `import robot_stack.store.codecs` can read a JPEG store; without that import zarr cannot
decode the image arrays, and TrajectoryStore.open says so (ensure_readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zarr.registry
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer

from robot_stack.store.schema import DEFAULT_JPEG_QUALITY, StoreError, parse_image_codec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec

CODEC_NAME = "robot_stack.jpeg"


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """uint8 chunk (1, H, W, 3) or (1, H, W, 1) <-> one baseline JPEG (imagecodecs/libjpeg-turbo)."""

    is_fixed_size = False
    quality: int = DEFAULT_JPEG_QUALITY

    def __init__(self, *, quality: int = DEFAULT_JPEG_QUALITY) -> None:
        q = int(quality)
        if not 1 <= q <= 100:
            raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
        object.__setattr__(self, "quality", q)

    @classmethod
    def from_dict(cls, data: dict) -> JpegCodec:
        return cls(**(data.get("configuration") or {}))

    def to_dict(self) -> dict:
        return {"name": CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        if dtype.to_native_dtype() != np.dtype(np.uint8):
            raise ValueError(f"{CODEC_NAME} encodes uint8 images only, got dtype {dtype.to_native_dtype()}")
        if len(shape) != 4 or shape[-1] not in (1, 3):
            raise ValueError(f"{CODEC_NAME} needs arrays of shape (T, H, W, 3|1), got {shape}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        import imagecodecs

        a = np.asarray(chunk_array.as_numpy_array())
        if a.shape[0] != 1:
            raise ValueError(f"{CODEC_NAME} encodes one frame per chunk, got a chunk of shape {a.shape}; "
                             "create the array with chunks=(1, H, W, C)")
        frame = a[0] if a.shape[-1] == 3 else a[0, ..., 0]
        enc = imagecodecs.jpeg8_encode(np.ascontiguousarray(frame), level=self.quality)
        return chunk_spec.prototype.buffer.from_bytes(bytes(enc))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        out = decode_frame(chunk_bytes.to_bytes()).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size depends on the image")  # is_fixed_size = False


def decode_frame(buf) -> np.ndarray:
    """One JPEG chunk -> (H, W, C) uint8 (also used by fastread, which bypasses zarr)."""
    import imagecodecs

    return np.asarray(imagecodecs.jpeg8_decode(buf))


def register() -> None:
    """Register JpegCodec with zarr (idempotent)."""
    zarr.registry.register_codec(CODEC_NAME, JpegCodec)


def is_registered() -> bool:
    try:
        zarr.registry.get_codec_class(CODEC_NAME)
    except KeyError:
        return False
    return True


def image_codec_kwargs(name: str) -> dict:
    """create_array keyword arguments (serializer / compressors) of image keys for a store's image_codec."""
    from zarr.codecs import BloscCodec

    kind, quality = parse_image_codec(name)
    if kind == "jpeg":
        return {"serializer": JpegCodec(quality=quality), "compressors": None}
    # Images are already high-entropy; lz4 keeps the recorder real-time at 30 Hz.
    return {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")}


def ensure_readable(path, image_codec: str) -> None:
    """Raise StoreError naming the fix when a store's image codec is not available to zarr in this process."""
    kind, _ = parse_image_codec(image_codec)
    if kind == "jpeg" and not is_registered():
        raise StoreError(
            f"store {path} stores images with image_codec={image_codec!r} (zarr codec {CODEC_NAME!r}), which is "
            "not registered with zarr in this process: `import robot_stack.store.codecs` (it registers the codec) "
            "before opening the store, and check that imagecodecs is installed")


register()
