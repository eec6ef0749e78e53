"""The `policy_update` / `policy_active` message schema (DESIGN.md §3 "ROS 2 interface"); the one owner.

Both topics carry std_msgs/String holding one JSON object:

    policy_update  (learner -> inference)   {"version": 3, "path": "/data/ckpt/v0003", "sha256": <of manifest.json>,
                                             "policy_type": "bc_conv", "created_ns": 1700000000000000000}
    policy_active  (inference -> everyone)  the same fields + {"status": "ok" | "rejected", "reason": "..."}

`path` is a checkpoint directory on the inference machine, or the http(s) URL of one that a learner on another
machine serves (robot_stack/policies/remote.py: the inference node downloads it into its cache first).
`sha256` is the hash of the checkpoint's manifest.json, which in turn holds the hash of every other file,
so one value pins the whole checkpoint. Unknown extra fields are ignored so an older inference node keeps
accepting messages from a newer learner. No torch import: the ROS adapters use this module directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robot_stack.policies.checkpoint import MANIFEST_FILE, read_manifest, resolve_checkpoint, sha256_file

STATUS_OK = "ok"
STATUS_REJECTED = "rejected"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PolicyMessageError(ValueError):
    """A policy_update / policy_active message that is not valid JSON or lacks/mistypes a field."""


@dataclass(frozen=True)
class PolicyUpdate:
    version: int
    path: str
    sha256: str
    policy_type: str
    created_ns: int

    def __post_init__(self) -> None:
        _validate(asdict(self), "policy_update")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class PolicyActive:
    version: int
    path: str
    sha256: str
    policy_type: str
    created_ns: int
    status: str
    reason: str = ""

    def __post_init__(self) -> None:
        _validate(asdict(self), "policy_active")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


_UPDATE_FIELDS = {"version": int, "path": str, "sha256": str, "policy_type": str, "created_ns": int}
_ACTIVE_FIELDS = {**_UPDATE_FIELDS, "status": str, "reason": str}


def _validate(d: dict[str, Any], what: str) -> None:
    fields = _ACTIVE_FIELDS if what == "policy_active" else _UPDATE_FIELDS
    for name, typ in fields.items():
        v = d.get(name)
        # bool is an int subclass; `"version": true` is a malformed message, not version 1.
        if not isinstance(v, typ) or isinstance(v, bool):
            raise PolicyMessageError(f"{what}: field {name!r} must be {typ.__name__}, got {v!r}")
    if d["version"] < 1:
        raise PolicyMessageError(f"{what}: version must be >= 1, got {d['version']}")
    if d["created_ns"] < 0:
        raise PolicyMessageError(f"{what}: created_ns must be >= 0, got {d['created_ns']}")
    if not d["path"] or not d["policy_type"]:
        raise PolicyMessageError(f"{what}: path and policy_type must be non-empty")
    if not _SHA256.match(d["sha256"]):
        raise PolicyMessageError(f"{what}: sha256 must be 64 lowercase hex digits, got {d['sha256']!r}")
    if what == "policy_active" and d["status"] not in (STATUS_OK, STATUS_REJECTED):
        raise PolicyMessageError(f"{what}: status must be {STATUS_OK!r} or {STATUS_REJECTED!r}, got {d['status']!r}")


def _parse_object(text: str | bytes, what: str, fields: dict[str, type]) -> dict[str, Any]:
    try:
        d = json.loads(text)
    except (ValueError, TypeError) as e:
        raise PolicyMessageError(f"{what} is not valid JSON ({e}): {str(text)[:200]!r}") from None
    if not isinstance(d, dict):
        raise PolicyMessageError(f"{what} must be a JSON object, got {type(d).__name__}")
    missing = [k for k in fields if k not in d and k != "reason"]
    if missing:
        raise PolicyMessageError(f"{what} lacks field(s) {missing}; expected {sorted(fields)}")
    return {k: d[k] for k in fields if k in d}


def parse_update(text: str | bytes) -> PolicyUpdate:
    """Validate a policy_update JSON string; raises PolicyMessageError naming the problem."""
    return PolicyUpdate(**_parse_object(text, "policy_update", _UPDATE_FIELDS))


def parse_active(text: str | bytes) -> PolicyActive:
    """Validate a policy_active JSON string; raises PolicyMessageError naming the problem."""
    return PolicyActive(**_parse_object(text, "policy_active", _ACTIVE_FIELDS))


def make_update(checkpoint_dir: str | Path) -> PolicyUpdate:
    """The policy_update announcing a saved checkpoint directory (or the `latest` of a checkpoint root)."""
    ckpt = resolve_checkpoint(Path(checkpoint_dir)).absolute()
    manifest = read_manifest(ckpt)
    return PolicyUpdate(version=manifest.version, path=str(ckpt), sha256=sha256_file(ckpt / MANIFEST_FILE),
                        policy_type=manifest.policy_type, created_ns=manifest.created_ns)


def make_active(update: PolicyUpdate, status: str, reason: str = "") -> PolicyActive:
    """The policy_active report for `update`: status ok (now acting) or rejected (reason says why)."""
    return PolicyActive(**asdict(update), status=status, reason=reason)
