"""policy_update / policy_active messages: built from a checkpoint, round-trip, malformed input refused."""

import json
import subprocess
import sys

import pytest

from robot_stack.inference.manifest import (
    PolicyMessageError,
    make_active,
    make_update,
    parse_active,
    parse_update,
)
from robot_stack.policies.checkpoint import sha256_file


def test_make_update_round_trip(save_version):
    path = save_version(1)
    update = make_update(path)
    assert (update.version, update.policy_type, update.path) == (1, "bc_conv", str(path.absolute()))
    assert update.sha256 == sha256_file(path / "manifest.json")
    assert make_update(path.parent) == update  # a checkpoint root resolves through `latest`
    assert parse_update(update.to_json()) == update
    active = make_active(update, "rejected", "schema mismatch")
    assert parse_active(active.to_json()) == active
    assert json.loads(active.to_json())["status"] == "rejected"


GOOD = {"version": 2, "path": "/ckpt/v0002", "sha256": "a" * 64, "policy_type": "bc_conv", "created_ns": 5}


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "sha256"}), r"lacks field\(s\) \['sha256'\]"),
    (json.dumps({**GOOD, "version": "2"}), "'version' must be int"),
    (json.dumps({**GOOD, "version": True}), "'version' must be int"),
    (json.dumps({**GOOD, "version": 0}), "version must be >= 1"),
    (json.dumps({**GOOD, "sha256": "xyz"}), "sha256 must be 64"),
    (json.dumps({**GOOD, "path": ""}), "non-empty"),
])
def test_parse_update_refuses_malformed(text, match):
    with pytest.raises(PolicyMessageError, match=match):
        parse_update(text)


def test_unknown_fields_are_ignored_and_status_checked():
    assert parse_update(json.dumps({**GOOD, "added_later": 1})).version == 2
    with pytest.raises(PolicyMessageError, match="status must be"):
        parse_active(json.dumps({**GOOD, "status": "maybe", "reason": ""}))


def test_message_module_does_not_import_torch():
    code = "import sys, robot_stack.inference.manifest; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
