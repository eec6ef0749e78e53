"""Checkpoint directories (DESIGN.md §3 "Checkpoints"): written atomically, verified by hash, never unpickled.

    root_dir/
      v0001/  config.json        {"type": <registered policy name>, "config": {...}}
              model.safetensors  the policy's state dict (weights only, no code)
              normalizer.json    dataset statistics (plain JSON numbers)
              schema.json        observation/action keys + dtype/shape + action_space the policy expects
              manifest.json      version, policy type, sha256 of every other file, parent, step, created_ns
      v0002/  ...
      latest                     text file naming the newest complete version directory ("v0002")

A save writes everything into `root_dir/.tmp-*`, fsyncs the files and the directory, renames it to
`v{version:04d}` in one step and only then replaces `latest` (temp file + os.replace). A crash at any
point leaves `latest` on the previous complete checkpoint; stale temp dirs are removed by the next save.
One learner writes a root_dir at a time.

This module imports torch and safetensors only inside the functions that need them, so the inference
manifest and other light modules can read manifests without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, ACTION_SPACES, FeatureSpec

if TYPE_CHECKING:
    from robot_stack.policies.base import Policy

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
NORMALIZER_FILE = "normalizer.json"
SCHEMA_FILE = "schema.json"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest"
HASHED_FILES = (CONFIG_FILE, MODEL_FILE, NORMALIZER_FILE, SCHEMA_FILE)
_VERSION_DIR = re.compile(r"^v(\d{4,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted or used; the message names the file and the fix."""


class SchemaMismatchError(CheckpointError):
    """The checkpoint expects observations/actions the live robot does not provide."""


# ---- schema -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicySchema:
    """What a policy reads and writes: observation key -> FeatureSpec, the action spec and its space."""

    observation: dict[str, FeatureSpec]
    action: FeatureSpec
    action_space: str = "ee_delta"

    @classmethod
    def from_features(cls, features: dict[str, FeatureSpec], action_space: str = "ee_delta") -> PolicySchema:
        """From flat features as in `robot_stack.types.rig_features` / a store schema (timestamps dropped)."""
        if ACTION_KEY not in features:
            raise ValueError(f"features have no {ACTION_KEY!r} key")
        if action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action space {action_space!r}; known: {sorted(ACTION_SPACES)}")
        obs = {k: v for k, v in features.items() if k.startswith("observation.")}
        return cls(observation=obs, action=features[ACTION_KEY], action_space=action_space)

    @classmethod
    def from_store_schema(cls, store_schema: Any) -> PolicySchema:
        """From a `robot_stack.store.StoreSchema` (anything with `.features` and `.action_space`)."""
        return cls.from_features(dict(store_schema.features), store_schema.action_space)

    def restrict(self, observation_keys: list[str]) -> PolicySchema:
        """The same schema with only the observation keys a policy reads."""
        missing = [k for k in observation_keys if k not in self.observation]
        if missing:
            raise SchemaMismatchError(f"policy reads {missing}, which the data schema does not have "
                                      f"(has {sorted(self.observation)}); fix the policy's cameras in its config")
        return PolicySchema({k: self.observation[k] for k in observation_keys}, self.action, self.action_space)

    def check_against(self, live: PolicySchema) -> None:
        """Raise SchemaMismatchError naming the first key whose presence, dtype or shape differs on `live`."""
        if self.action_space != live.action_space:
            raise SchemaMismatchError(f"checkpoint action_space {self.action_space!r} != robot's "
                                      f"{live.action_space!r}; deploy a policy trained for {live.action_space!r}")
        if self.action != live.action:
            raise SchemaMismatchError(f"key {ACTION_KEY!r}: checkpoint {self.action} != robot's {live.action}; "
                                      "deploy a policy trained on this robot's action space")
        for key, spec in self.observation.items():
            if key not in live.observation:
                raise SchemaMismatchError(f"key {key!r}: the checkpoint needs it but the robot does not provide it "
                                          f"(robot has {sorted(live.observation)}); enable that camera/stream or "
                                          "deploy a policy trained without it")
            if live.observation[key] != spec:
                raise SchemaMismatchError(f"key {key!r}: checkpoint expects {spec.dtype} {spec.shape}, robot provides "
                                          f"{live.observation[key].dtype} {live.observation[key].shape}; configure "
                                          "the rig to match or retrain on this rig's data")

    def to_json(self) -> dict:
        return {"observation": {k: v.to_json() for k, v in self.observation.items()},
                "action": {ACTION_KEY: self.action.to_json()}, "action_space": self.action_space}

    @classmethod
    def from_json(cls, d: dict) -> PolicySchema:
        return cls(observation={k: FeatureSpec.from_json(v) for k, v in d["observation"].items()},
                   action=FeatureSpec.from_json(d["action"][ACTION_KEY]), action_space=str(d["action_space"]))


# ---- manifest -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    version: int
    policy_type: str
    files: dict[str, str]            # file name -> sha256 hex, for every file except manifest.json
    step: int
    parent_version: int | None = None
    created_ns: int = 0
    format: int = CHECKPOINT_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": self.format, "version": self.version, "policy_type": self.policy_type,
                "parent_version": self.parent_version, "step": self.step, "created_ns": self.created_ns,
                "files": dict(self.files), "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        return cls(format=int(d["format"]), version=int(d["version"]), policy_type=str(d["policy_type"]),
                   parent_version=None if d.get("parent_version") is None else int(d["parent_version"]),
                   step=int(d["step"]), created_ns=int(d["created_ns"]),
                   files={str(k): str(v) for k, v in d["files"].items()}, extra=dict(d.get("extra", {})))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(ckpt_dir: Path) -> Manifest:
    """Parse manifest.json (no hash checks; use verify_checkpoint before trusting the files)."""
    path = Path(ckpt_dir) / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {ckpt_dir} is not a complete checkpoint; point at a "
                              "v#### directory written by save_checkpoint (or the checkpoint root with a 'latest' file)")
    try:
        manifest = Manifest.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} is malformed ({type(e).__name__}: {e}); re-save the checkpoint") from None
    if manifest.format != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {manifest.format} is not {CHECKPOINT_FORMAT}; "
                              "re-save it with this version of robot_stack")
    return manifest


def verify_checkpoint(path: Path) -> Manifest:
    """Check every file against its sha256 in the manifest; raise CheckpointError naming the bad file."""
    ckpt = resolve_checkpoint(path)
    manifest = read_manifest(ckpt)
    missing = [f for f in HASHED_FILES if f not in manifest.files]
    if missing:
        raise CheckpointError(f"{ckpt / MANIFEST_FILE} does not list {missing}; re-save the checkpoint")
    for name, expected in manifest.files.items():
        if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST_FILE):
            raise CheckpointError(f"{ckpt / MANIFEST_FILE} lists an invalid file name {name!r}; re-save the checkpoint")
        file = ckpt / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing; the copy of checkpoint v{manifest.version:04d} is incomplete: "
                                  "copy the whole directory again")
        actual = sha256_file(file)
        if actual != expected:
            raise CheckpointError(f"{file}: sha256 {actual[:12]}… does not match the manifest ({expected[:12]}…); "
                                  f"the file is corrupt or was modified: copy checkpoint v{manifest.version:04d} "
                                  "again from the learner or re-save it")
    return manifest


# ---- root directory: versions and the latest pointer -------------------------------------------
def version_dir_name(version: int) -> str:
    return f"v{version:04d}"


def list_versions(root_dir: Path) -> list[int]:
    """Versions with a v#### directory under root_dir (complete or not: a crash after the rename but before
    the `latest` update leaves a complete, unannounced one), ascending."""
    root = Path(root_dir)
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := _VERSION_DIR.match(p.name)))


def latest_checkpoint(root_dir: Path) -> Path | None:
    """The directory `root_dir/latest` names, or None when nothing was saved yet."""
    pointer = Path(root_dir) / LATEST_FILE
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not _VERSION_DIR.match(name):
        raise CheckpointError(f"{pointer} holds {name!r}, not a version directory name; delete it and re-save")
    return Path(root_dir) / name


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint directory as given, or the one `path/latest` names when path is a checkpoint root."""
    path = Path(path)
    if not (path / MANIFEST_FILE).exists() and (path / LATEST_FILE).is_file():
        return latest_checkpoint(path)
    return path


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()


def _publish(tmp_dir: Path, final_dir: Path) -> None:
    """The commit point: one rename makes the complete directory visible under its version name."""
    os.rename(tmp_dir, final_dir)
    _fsync_path(final_dir.parent)


def _point_latest(root: Path, final_dir: Path) -> None:
    tmp = root / f".{LATEST_FILE}.tmp-{uuid.uuid4().hex}"
    _write_synced(tmp, (final_dir.name + "\n").encode())
    os.replace(tmp, root / LATEST_FILE)
    _fsync_path(root)


def _checkpoint_state(policy: Policy) -> dict:
    """What model.safetensors holds: the state dict, or only what a policy names through a
    `checkpoint_state_dict()` method (a LoRA adapter without its multi-GB base, which the checkpoint names by
    hash in its config instead; loaded back by the policy's `load_checkpoint_state_dict`)."""
    own = getattr(policy, "checkpoint_state_dict", None)
    return own() if own is not None else policy.state_dict()


def save_checkpoint(policy: Policy, normalizer: Normalizer, schema: PolicySchema, root_dir: Path, version: int,
                    step: int, parent: int | None = None, extra: dict[str, Any] | None = None,
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Write `root_dir/v{version:04d}` atomically and point `root_dir/latest` at it; returns its path.

    `schema` is the data's schema; the checkpoint keeps the observation keys the policy reads.
    Versions are monotonic: a version at or below an existing one is refused.
    `extra_files` (name -> bytes, e.g. the RL learner's optimiser/RNG state as safetensors + JSON) are written
    into the same directory and hashed in the manifest like every other file; loaders that do not know them
    ignore them.
    """
    from safetensors.torch import save_file

    root = Path(root_dir)
    root.mkdir(parents=True, exist_ok=True)
    existing = list_versions(root)
    if version < 1 or (existing and version <= existing[-1]):
        raise CheckpointError(f"checkpoint version {version} is not above the newest in {root} "
                              f"({existing[-1] if existing else 'none'}); versions must increase")
    for stale in root.glob(".tmp-*"):  # left by a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    final_dir = root / version_dir_name(version)
    tmp_dir = root / f".tmp-{final_dir.name}-{uuid.uuid4().hex}"
    tmp_dir.mkdir()
    try:
        ckpt_schema = schema.restrict(policy.observation_keys())
        _write_synced(tmp_dir / CONFIG_FILE, _json_bytes({"type": policy.name, "config": policy.config.to_dict()}))
        state = {k: v.detach().to("cpu").contiguous() for k, v in _checkpoint_state(policy).items()}
        save_file(state, str(tmp_dir / MODEL_FILE), metadata={"policy_type": policy.name})
        _fsync_path(tmp_dir / MODEL_FILE)
        _write_synced(tmp_dir / NORMALIZER_FILE, _json_bytes(normalizer.to_json()))
        _write_synced(tmp_dir / SCHEMA_FILE, _json_bytes(ckpt_schema.to_json()))
        extra_names = []
        for name, data in (extra_files or {}).items():
            if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST_FILE, *HASHED_FILES):
                raise CheckpointError(f"extra checkpoint file name {name!r} is not allowed")
            _write_synced(tmp_dir / name, data)
            extra_names.append(name)
        manifest = Manifest(version=version, policy_type=policy.name, step=int(step), parent_version=parent,
                            created_ns=time.time_ns(), extra=dict(extra or {}),
                            files={name: sha256_file(tmp_dir / name) for name in (*HASHED_FILES, *extra_names)})
        _write_synced(tmp_dir / MANIFEST_FILE, _json_bytes(manifest.to_json()))
        _fsync_path(tmp_dir)
        _publish(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _point_latest(root, final_dir)
    log.info("saved checkpoint %s (policy %s, step %d, parent %s)", final_dir, policy.name, step, parent)
    return final_dir


def load_policy(path: Path, expected_schema: PolicySchema | None = None, device: str = "cpu"
                ) -> tuple[Policy, Manifest]:
    """Verify, check the schema against the live robot's, rebuild through the registry, load safetensors.

    `path` is a v#### directory or a checkpoint root (then `latest` is used). Returns the policy in eval
    mode on `device` and its manifest. Raises CheckpointError (SchemaMismatchError for schema problems).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from robot_stack.policies.base import make_policy, policy_class
    from robot_stack.registry import UnknownNameError

    ckpt = resolve_checkpoint(path)
    manifest = verify_checkpoint(ckpt)
    try:
        schema = PolicySchema.from_json(json.loads((ckpt / SCHEMA_FILE).read_text()))
        config = json.loads((ckpt / CONFIG_FILE).read_text())
        normalizer = Normalizer.load(ckpt / NORMALIZER_FILE)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{ckpt}: malformed schema/config/normalizer ({type(e).__name__}: {e}); "
                              "re-save the checkpoint") from None
    if expected_schema is not None:
        schema.check_against(expected_schema)
    if config.get("type") != manifest.policy_type:
        raise CheckpointError(f"{ckpt / CONFIG_FILE}: type {config.get('type')!r} != manifest policy_type "
                              f"{manifest.policy_type!r}; re-save the checkpoint")
    try:
        build_on_device = getattr(policy_class(manifest.policy_type), "build_on_device", None)
        if build_on_device is not None:  # a large base built straight on `device`, once per process (openvla)
            policy = build_on_device(config.get("config", {}), normalizer, device)
        else:
            policy = make_policy(manifest.policy_type, config.get("config", {}), normalizer)
    except (UnknownNameError, ValueError, TypeError) as e:
        raise CheckpointError(f"{ckpt / CONFIG_FILE}: cannot build policy {manifest.policy_type!r}: {e}") from None
    try:
        state = load_file(str(ckpt / MODEL_FILE), device="cpu")
        load_state = getattr(policy, "load_checkpoint_state_dict", None)
        if load_state is not None:  # adapter-only checkpoints (openvla + LoRA): the base comes from elsewhere
            load_state(state)
        else:
            policy.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt / MODEL_FILE}: weights do not fit policy {manifest.policy_type!r} "
                              f"with its config ({e}); re-save the checkpoint") from None
    policy.to(device).eval()
    return policy, manifest


# ---- critic checkpoints (V-GPS, PA-RL: DESIGN.md §3 "a critic is its own checkpoint with its own version") ------
CRITIC_KIND = "critic"
POLICY_KIND = "policy"


def checkpoint_kind(config: dict) -> str:
    """What a checkpoint's config.json ({"type", "config"}) was written as: "critic" when its policy config's
    `extra.kind` says so (hashed with config.json by the manifest, so the kind is pinned like the weights), else
    "policy". A critic is an ordinary registered policy (actor_critic trained by Cal-QL) whose `q_values` is what
    the deployment uses; the kind keeps it off the policy's update path and the policy off the critic's."""
    extra = (config.get("config") or {}).get("extra") or {}
    return str(extra.get("kind", POLICY_KIND)) if isinstance(extra, dict) else POLICY_KIND


def load_critic(path: Path, expected_schema: PolicySchema | None = None, device: str = "cpu"
                ) -> tuple[Policy, Manifest]:
    """load_policy for a critic checkpoint: the same hash/schema/safetensors checks, plus its kind is "critic" and
    the model has `q_values(obs, actions (K, A)) -> (K,)`. Raises CheckpointError naming the fix otherwise."""
    ckpt = resolve_checkpoint(path)
    verify_checkpoint(ckpt)
    try:
        kind = checkpoint_kind(json.loads((ckpt / CONFIG_FILE).read_text()))
    except ValueError as e:
        raise CheckpointError(f"{ckpt / CONFIG_FILE} is not valid JSON ({e}); re-save the checkpoint") from None
    if kind != CRITIC_KIND:
        raise CheckpointError(f"{ckpt} is a {kind} checkpoint, not a critic; announce it on policy_update, or train "
                              "the critic with learner=vgps (its policy_config.extra.kind is 'critic')")
    policy, manifest = load_policy(ckpt, expected_schema=expected_schema, device=device)
    if not callable(getattr(policy, "q_values", None)):
        raise CheckpointError(f"{ckpt}: policy type {manifest.policy_type!r} has no q_values(obs, actions), so it "
                              "cannot score actions; a critic checkpoint must be an actor_critic (Cal-QL) model")
    return policy, manifest
