"""Import/export between the trajectory store and other robot-learning formats (issue 3, "interoperable").

    from robot_stack.store.formats import FORMATS, export_store, import_into

    export_store(store, "lerobot_v3", "out/ds")                  # -> Path of what was written
    import_into("data/stores/rig1", "robomimic_hdf5", "demos.hdf5")  # -> new episode indices

Formats (one module each; its docstring says the layout and what does not round-trip):

    lerobot_v3             LeRobotDataset v3: parquet frames + per-camera H.264 MP4 (images lossy)
    robomimic_hdf5         robomimic HDF5: data/demo_<i>/{obs,next_obs,actions,rewards,dones} (lossless)
    diffusion_policy_zarr  diffusion_policy ReplayBuffer: zarr v2 data/<key> + meta/episode_ends (lossless)
    ros2_bag               rosbag2 (sqlite3 or mcap) of our own topics (DESIGN.md §3 ROS 2 interface)

Every export also writes our StoreSchema and each episode's EpisodeMeta into the target's free-form metadata,
so an import of our own export restores them; foreign files get a schema derived from their layout.
Format modules are imported lazily: `import robot_stack.store.formats` needs none of pyarrow, av, h5py, rosbags.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path

from robot_stack.store.formats._common import FormatError, Progress, open_target

log = logging.getLogger(__name__)

_MODULES = {
    "lerobot_v3": "robot_stack.store.formats.lerobot_v3",
    "robomimic_hdf5": "robot_stack.store.formats.robomimic_hdf5",
    "diffusion_policy_zarr": "robot_stack.store.formats.diffusion_policy_zarr",
    "ros2_bag": "robot_stack.store.formats.ros2_bag",
}
FORMATS: tuple[str, ...] = tuple(_MODULES)

__all__ = ["FORMATS", "FormatError", "export_store", "import_into"]


def _module(fmt: str):
    if fmt not in _MODULES:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return importlib.import_module(_MODULES[fmt])


def _check_options(func, options: dict, fmt: str, what: str, positional: int) -> None:
    """Unknown format options fail before anything is read or written, listing the ones `fmt` takes."""
    params = list(inspect.signature(func).parameters.values())[positional:]
    known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise FormatError(f"{fmt} {what} does not take option(s) {unknown}; it takes {known or 'none'}")


def export_store(store, fmt: str, out_path, episodes: list[int] | None = None,
                 progress: Callable[[int, int], None] | None = None, **options) -> Path:
    """Write committed episodes of `store` (all, or the given indices in that order) to `out_path` in `fmt`.

    out_path must not exist (nothing is ever overwritten). progress(done, total) is called per episode.
    options are format specific (see each module's `export`). Returns the path written.
    """
    mod = _module(fmt)
    _check_options(mod.export, options, fmt, "export", positional=4)
    eps = list(range(store.n_episodes)) if episodes is None else [int(i) for i in episodes]
    if not eps:
        raise FormatError(f"nothing to export: store {store.path} has no committed episodes"
                          if episodes is None else "nothing to export: the episode list is empty")
    for i in eps:
        if not -store.n_episodes <= i < store.n_episodes:
            raise FormatError(f"episode {i} is not in store {store.path} ({store.n_episodes} committed episodes)")
    out = Path(out_path)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise FormatError(f"{out} already exists; choose a new output path (exports never overwrite)")
    if out.exists():
        out.rmdir()  # an empty dir is fine to take over; some writers (rosbags) insist on creating it
    out.parent.mkdir(parents=True, exist_ok=True)
    path = mod.export(store, out, [i % store.n_episodes for i in eps], Progress(progress, len(eps)), **options)
    log.info("exported %d episodes of %s as %s to %s", len(eps), store.path, fmt, path)
    return path


def import_into(store_path, fmt: str, src_path, progress: Callable[[int, int], None] | None = None,
                **options) -> list[int]:
    """Append every episode of `src_path` (in `fmt`) to the store at `store_path`; returns the new indices.

    The store is created with the schema derived from the source when absent; an existing store whose schema
    differs is refused (StoreSchemaError naming the key). options are format specific (see each module's
    `open_source`), plus `fsync` (default True) for the store.
    """
    mod = _module(fmt)
    src = Path(src_path)
    if not src.exists():
        raise FormatError(f"{src} does not exist; give the path of a {fmt} export (see `robot-stack store export`)")
    fsync = bool(options.pop("fsync", True))
    _check_options(mod.open_source, options, fmt, "import", positional=1)
    source = mod.open_source(src, **options)
    try:
        store = open_target(store_path, source.schema, source.inferred_fields, fsync=fsync)
        try:
            bar = Progress(progress, source.n_episodes)
            new: list[int] = []
            for data, meta in source.episodes():
                new.append(store.append_episode(data, meta))
                bar.step()
        finally:
            store.close()
    finally:
        source.close()
    log.info("imported %d episodes from %s (%s) into %s: indices %s", len(new), src, fmt, store_path,
             f"{new[0]}..{new[-1]}" if new else "none")
    return new
