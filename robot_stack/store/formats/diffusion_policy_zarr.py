"""diffusion_policy zarr ReplayBuffer (diffusion_policy/common/replay_buffer.py, pinned zarr 2.12).

Layout written (zarr format 2, a directory store, readable by `ReplayBuffer.copy_from_path`):

    <out>/data/<name>         (N, *shape) every episode's steps concatenated in time; images chunked one
                              frame per chunk (what diffusion_policy's real-robot datasets use), low-dim
                              LOWDIM_CHUNK_STEPS steps per chunk; Blosc compressed (lossless)
    <out>/meta/episode_ends   (n_episodes,) int64 exclusive end of each episode
    <out>/.zattrs             {"robot_stack": {schema, episodes: [EpisodeMeta], key_map: {flat key: name}}}

Names are identifier-style (`short_key`: observation.images.front -> front_image, observation.state ->
robot_state, action -> action) so a diffusion_policy shape_meta can name them. Everything round-trips
exactly (arrays are stored with their dtypes; episode metadata lives in the root attributes). A foreign
ReplayBuffer (no robot_stack attribute) is imported with features = its data arrays, names mapped back by
`flat_key_guess`, control_hz from the `control_hz` option (default 10) and per-episode task "" / source
"import"; its images are expected as uint8 (T, H, W, 3); other codecs than numcodecs' defaults (e.g.
diffusion_policy's Jpeg2k from imagecodecs) need that codec registered before import.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numcodecs
import numpy as np
import zarr

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
    flat_key_guess,
    robot_stack_meta,
    schema_from_meta,
    short_key_map,
)
from robot_stack.types import ACTION_KEY, FeatureSpec

log = logging.getLogger(__name__)

FMT = "diffusion_policy_zarr"
LOWDIM_CHUNK_STEPS = 1024
# diffusion_policy's own choices: lz4 for images (speed), zstd + bit shuffle for low-dim.
_IMAGE_COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
_LOWDIM_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)


def export(store, out: Path, episodes: list[int], progress: Progress) -> Path:
    """Write `episodes` of `store` as a zarr v2 ReplayBuffer directory at `out`."""
    features = store.schema.features
    key_map = short_key_map(features)
    lengths = [store.episode_slice(i).stop - store.episode_slice(i).start for i in episodes]
    ends = np.cumsum(lengths, dtype=np.int64)
    root = zarr.open_group(str(out), mode="w", zarr_format=2)
    data = root.create_group("data")
    arrays = {}
    for key, spec in features.items():
        image_like = len(spec.shape) >= 2
        arrays[key] = data.create_array(
            key_map[key], shape=(int(ends[-1]), *spec.shape), dtype=spec.dtype, fill_value=0,
            chunks=(1, *spec.shape) if image_like else (LOWDIM_CHUNK_STEPS, *spec.shape),
            compressors=_IMAGE_COMPRESSOR if image_like else _LOWDIM_COMPRESSOR)
    start = 0
    for i, end in zip(episodes, ends, strict=True):
        ep = store.get_episode(i)
        for key, arr in arrays.items():
            arr[start:int(end)] = ep[key]
        start = int(end)
        progress.step()
    root.create_group("meta").create_array("episode_ends", data=ends, chunks=(LOWDIM_CHUNK_STEPS,),
                                           compressors=_LOWDIM_COMPRESSOR)
    root.attrs[META_NAME] = {**robot_stack_meta(store, episodes), "key_map": key_map}
    return out


class ReplayBufferSource(Source):
    """A diffusion_policy ReplayBuffer opened for import.

    Options (used only for a foreign ReplayBuffer without robot_stack attributes): control_hz (default 10.0),
    robot (default "unknown"), task (every episode's task, default "").
    """

    def __init__(self, src: Path, control_hz: float = 10.0, robot: str = "unknown", task: str = ""):
        self.src = src
        check_exists(src / "meta" / "episode_ends", "meta/episode_ends", FMT)
        check_exists(src / "data", "data/<key> arrays", FMT)
        try:
            root = zarr.open_group(str(src), mode="r")
        except Exception as e:  # noqa: BLE001 - zarr raises several types for a non-group
            raise FormatError(f"{src} is not a zarr group ({e}); give the root of a {FMT} export") from None
        self.root = root
        self.ends = np.asarray(root["meta/episode_ends"][:], dtype=np.int64)
        attrs = dict(root.attrs).get(META_NAME) or {}
        names = sorted(root["data"].array_keys())
        if not names:
            raise FormatError(f"{src}/data holds no arrays; nothing to import")
        inverse = {v: k for k, v in attrs.get("key_map", {}).items()}
        self.names = {inverse.get(n, flat_key_guess(n)): n for n in names}
        n_steps = {n: int(root[f"data/{n}"].shape[0]) for n in names}
        if len(self.ends) and (np.any(np.diff(self.ends) <= 0) or self.ends[0] <= 0
                               or self.ends[-1] > min(n_steps.values())):
            raise FormatError(f"{src}/meta/episode_ends {self.ends.tolist()[:8]}... is not increasing or points "
                              f"past the data arrays (lengths {n_steps}); the export is corrupt, re-export it")
        if len(self.ends) and max(n_steps.values()) > self.ends[-1]:
            # diffusion_policy asserts here; an append interrupted before its episode_ends write left the tail.
            log.warning("%s: data arrays extend past the last episode end %d %s; the tail is ignored",
                        src, self.ends[-1], n_steps)
        self.schema = schema_from_meta(attrs)
        self.recorded_meta = attrs.get("episodes")
        self.task = task
        if self.schema is None:
            feats = {k: FeatureSpec(str(root[f"data/{n}"].dtype), tuple(root[f"data/{n}"].shape[1:]))
                     for k, n in self.names.items()}
            if ACTION_KEY not in feats:
                raise FormatError(f"{src}/data has no 'action' array (arrays: {names}); not a policy dataset")
            self.schema = StoreSchema(robot=robot, control_hz=control_hz, features=feats,
                                      action_space=action_space_guess(int(np.prod(feats[ACTION_KEY].shape))),
                                      cameras=cameras_of(feats))
            self.inferred_fields = frozenset({"robot", "control_hz", "action_space"})
        else:
            missing = [k for k in self.schema.features if k not in self.names]
            if missing:
                raise FormatError(f"{src}/data lacks arrays for {missing} that its robot_stack schema lists; "
                                  "the export is incomplete, re-export it")
        if self.recorded_meta is not None and len(self.recorded_meta) != len(self.ends):
            raise FormatError(f"{src}: {len(self.ends)} episode ends but {len(self.recorded_meta)} recorded "
                              "episode metadata rows; the export is corrupt, re-export it")
        self.n_episodes = len(self.ends)

    def episodes(self):
        start = 0
        for i, end in enumerate(self.ends):
            data = {k: self.root[f"data/{self.names[k]}"][start:int(end)] for k in self.schema.features}
            rec = self.recorded_meta[i] if self.recorded_meta is not None else None
            yield data, episode_meta(rec, FMT, self.src, task=self.task)
            start = int(end)


open_source = ReplayBufferSource  # the import entry point: its keyword arguments are the import options
