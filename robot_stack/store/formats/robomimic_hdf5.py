"""robomimic HDF5 (robomimic docs/datasets/overview.md).

Layout written (one file):

    data                          attrs: total (steps), env_args (JSON: env_name = robot, type, env_kwargs with
                                  control_hz/action_space/cameras), robot_stack (JSON: schema, episodes,
                                  key_map {flat key: obs key})
    data/demo_<i>/obs/<obs key>   (T, *shape) every feature except `action`, keys via `short_key`:
                                  observation.images.front -> front_image, observation.state -> robot_state,
                                  timestamps.state.capture_ns -> state_capture_ns
    data/demo_<i>/next_obs/<k>    obs shifted by one step, the last step repeated (robomimic's convention)
    data/demo_<i>/actions         (T, action_dim) float32
    data/demo_<i>/rewards         (T,) float32: 1.0 on the last step of a successful episode, else 0 (sparse)
    data/demo_<i>/dones           (T,) uint8: 1 on the last step
    demo attrs                    num_samples, robot_stack_meta (EpisodeMeta JSON)
    mask/<filter key>             (n,) bytes demo names, e.g. mask/train, mask/valid (the `split` option)

Round trip: every array is exact (stored with its dtype, images uncompressed uint8). Episode metadata returns
from robot_stack_meta; a foreign file (no robot_stack attrs) gets success from its rewards (any > 0), task
from the `task` option, the schema from demo_0's obs (obs keys mapped back with `flat_key_guess`), control_hz
from the `control_hz` option; its filter keys are written into each episode's notes.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import h5py
import numpy as np

from robot_stack.store import StoreSchema
from robot_stack.store.formats._common import (
    META_NAME,
    FormatError,
    Progress,
    Source,
    action_space_guess,
    cameras_of,
    episode_meta,
    flat_key_guess,
    robot_stack_meta,
    schema_from_meta,
    short_key_map,
)
from robot_stack.types import ACTION_KEY, FeatureSpec

log = logging.getLogger(__name__)

FMT = "robomimic_hdf5"
# robomimic's EnvType has no "real robot" entry; GYM_TYPE (2) is the generic one its env factory knows.
_ENV_TYPE_GYM = 2


def _split_of(store, i: int) -> str | None:
    # The store may gain a per-episode split; until then the `split` option gives it.
    return getattr(store.episode_meta(i), "split", None)


def export(store, out: Path, episodes: list[int], progress: Progress,
           split: dict[str, list[int]] | None = None) -> Path:
    """Write `episodes` as one robomimic HDF5 file at `out`.

    split: {filter key: store episode indices}, written as mask/<filter key>; default: the episodes' own
    `split` metadata when the store has it, else no mask group.
    """
    schema = store.schema
    key_map = short_key_map(k for k in schema.features if k != ACTION_KEY)
    demo_of = {i: f"demo_{n}" for n, i in enumerate(episodes)}
    if split is None:
        split = {}
        for i in episodes:
            s = _split_of(store, i)
            if s:
                split.setdefault(str(s), []).append(i)
    for name, idx in split.items():
        unknown = [i for i in idx if i not in demo_of]
        if unknown:
            raise FormatError(f"split {name!r} names episodes {unknown} that are not being exported")
    total = 0
    with h5py.File(out, "w") as f:
        data = f.create_group("data")
        for i in episodes:
            ep = store.get_episode(i)
            meta = store.episode_meta(i)
            g = data.create_group(demo_of[i])
            n = len(ep[ACTION_KEY])
            obs, next_obs = g.create_group("obs"), g.create_group("next_obs")
            for key, name in key_map.items():
                obs.create_dataset(name, data=ep[key])
                next_obs.create_dataset(name, data=np.concatenate([ep[key][1:], ep[key][-1:]]))
            g.create_dataset("actions", data=ep[ACTION_KEY])
            rewards = np.zeros(n, dtype=np.float32)
            rewards[-1] = 1.0 if meta.success else 0.0
            dones = np.zeros(n, dtype=np.uint8)
            dones[-1] = 1
            g.create_dataset("rewards", data=rewards)
            g.create_dataset("dones", data=dones)
            g.attrs["num_samples"] = n
            g.attrs["robot_stack_meta"] = meta.dumps()
            total += n
            progress.step()
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({
            "env_name": schema.robot, "type": _ENV_TYPE_GYM,
            "env_kwargs": {"control_hz": schema.control_hz, "action_space": schema.action_space,
                           "cameras": list(schema.cameras), "source": "robot_stack"}})
        meta_all = robot_stack_meta(store, episodes)
        meta_all["key_map"] = key_map
        data.attrs[META_NAME] = json.dumps(meta_all)
        if split:
            mask = f.create_group("mask")
            for name, idx in split.items():
                mask.create_dataset(name, data=np.array([demo_of[i].encode() for i in idx], dtype="S"))
    return out


def _demo_number(name: str) -> int:
    m = re.fullmatch(r"demo_(\d+)", name)
    return int(m.group(1)) if m else -1


class RobomimicSource(Source):
    """A robomimic HDF5 file opened for import.

    Options (used only for a foreign file without robot_stack attributes): control_hz (default 10.0),
    robot (default: env_args env_name), task (every episode's task, default "").
    """

    def __init__(self, src: Path, control_hz: float = 10.0, robot: str | None = None, task: str = ""):
        self.src = src
        try:
            self.f = h5py.File(src, "r")
        except OSError as e:
            raise FormatError(f"{src} is not an HDF5 file ({e}); give a robomimic .hdf5 file or choose the "
                              "matching format") from None
        try:
            self._open(control_hz, robot, task)
        except BaseException:
            self.f.close()
            raise

    def _open(self, control_hz, robot, task) -> None:
        if "data" not in self.f:
            raise FormatError(f"{self.src} has no 'data' group (top level: {list(self.f)}); not a robomimic "
                              "file: robomimic files hold data/demo_<i>/{obs, actions, ...}")
        data = self.f["data"]
        # robomimic orders demos by number (demo_10 after demo_9), not by string.
        self.demos = sorted((k for k in data if _demo_number(k) >= 0), key=_demo_number)
        if not self.demos:
            raise FormatError(f"{self.src}:data has no demo_<i> groups (found {list(data)[:5]}); nothing to import")
        for d in self.demos:
            for need in ("obs", "actions"):
                if need not in data[d]:
                    raise FormatError(f"{self.src}:data/{d} has no {need!r}; robomimic demos need obs/ and actions")
        rec = json.loads(data.attrs[META_NAME]) if META_NAME in data.attrs else {}
        self.schema = schema_from_meta(rec)
        obs0 = data[self.demos[0]]["obs"]
        inverse = {v: k for k, v in rec.get("key_map", {}).items()} or {n: flat_key_guess(n) for n in obs0}
        self.obs_name = {flat: name for name, flat in inverse.items()}
        self.task = task
        self.filters: dict[str, list[str]] = {}
        for name, ds in self.f.get("mask", {}).items():
            for demo in ds[:]:
                self.filters.setdefault(demo.decode() if isinstance(demo, bytes) else str(demo), []).append(name)
        if self.schema is None:
            env = json.loads(data.attrs.get("env_args", "{}") or "{}")
            feats = {flat: FeatureSpec(str(obs0[name].dtype), tuple(obs0[name].shape[1:]))
                     for flat, name in self.obs_name.items()}
            act = data[self.demos[0]]["actions"]
            feats[ACTION_KEY] = FeatureSpec("float32", tuple(act.shape[1:]))
            self.schema = StoreSchema(robot=robot or str(env.get("env_name") or "unknown"), control_hz=control_hz,
                                      action_space=action_space_guess(int(np.prod(act.shape[1:]))),
                                      features=feats, cameras=cameras_of(feats))
            self.inferred_fields = frozenset({"control_hz", "action_space"} | ({"robot"} if robot is None else set()))
        else:
            missing = [k for k in self.schema.features if k != ACTION_KEY and k not in self.obs_name]
            if missing:
                raise FormatError(f"{self.src}: the robot_stack schema lists {missing} but the key map has no obs "
                                  "name for them; the export is corrupt, re-export it")
        self.n_episodes = len(self.demos)

    def episodes(self):
        data = self.f["data"]
        for d in self.demos:
            g = data[d]
            missing = [n for n in self.obs_name.values() if n not in g["obs"]]
            if missing:
                raise FormatError(f"{self.src}:data/{d}/obs lacks {missing} that the first demo has; "
                                  "all demos must hold the same obs keys")
            ep = {flat: g["obs"][name][:] for flat, name in self.obs_name.items()}
            ep[ACTION_KEY] = g["actions"][:]
            rec = g.attrs.get("robot_stack_meta")
            if rec is not None:
                meta = episode_meta(json.loads(rec), FMT, self.src)
            else:
                rewards = g["rewards"][:] if "rewards" in g else None
                filters = self.filters.get(d)
                meta = episode_meta(None, FMT, self.src, task=self.task,
                                    success=None if rewards is None else bool(np.any(rewards > 0)))
                if filters:
                    meta = meta.replace(notes=f"{meta.notes} ({d}; filter keys: {', '.join(filters)})")
            yield ep, meta

    def close(self) -> None:
        self.f.close()


open_source = RobomimicSource  # the import entry point: its keyword arguments are the import options
