"""A learner on another machine: CheckpointServer on loopback, fetch_checkpoint, PolicyRunner loading by URL.

Real servers on 127.0.0.1, real checkpoints from save_checkpoint (the tiny bc_conv of conftest).
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import EVENT_ACTIVATED, EVENT_REJECTED, PolicyRunner
from robot_stack.policies.checkpoint import MODEL_FILE, CheckpointError, verify_checkpoint
from robot_stack.policies.remote import (
    CheckpointServer,
    fetch_checkpoint,
    parse_listen,
    server_from_config,
    url_allowed,
)


def drain(runner):
    out = []
    while not runner.events.empty():
        out.append(runner.events.get_nowait())
    return out


def corrupt(path: Path, offset: int = 200) -> None:
    """Flip one byte of the learner's file after saving: the manifest still names the original hash."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def root(tmp_path):
    return tmp_path / "ckpt"  # where conftest's save_version writes


@pytest.fixture
def server(root):
    with CheckpointServer(root) as srv:  # 127.0.0.1, ephemeral port
        yield srv


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (kernel backlog) and never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_fetch_round_trip_verifies_and_reuses_the_cache(save_version, server, tmp_path):
    v1 = save_version(1)
    update = server.announce(make_update(v1))
    assert update.path == f"http://127.0.0.1:{server.port}/v0001" == server.url + "/v0001"
    cache = tmp_path / "cache"
    local = fetch_checkpoint(update.path, cache, timeout_s=10, expected_sha256=update.sha256)
    assert local == cache / "v0001"
    assert verify_checkpoint(local).version == 1
    for f in v1.iterdir():
        assert (local / f.name).read_bytes() == f.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["v0001"]  # no temp dir left
    # A verified copy is reused without the network (rollback while the learner is down).
    server.close()
    assert fetch_checkpoint(update.path, cache, timeout_s=1, expected_sha256=update.sha256) == local


def test_corrupted_byte_is_rejected_naming_the_file_and_leaves_nothing(save_version, server, tmp_path):
    v1 = save_version(1)
    update = server.announce(make_update(v1))
    corrupt(v1 / MODEL_FILE)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=rf"{update.path}/{MODEL_FILE}: sha256 .* does not match the manifest"):
        fetch_checkpoint(update.path, cache, timeout_s=10, expected_sha256=update.sha256)
    assert list(cache.iterdir()) == []
    # The announced sha256 pins manifest.json itself: a server answering with another manifest is refused.
    other = "0" * 64
    with pytest.raises(CheckpointError, match=r"manifest.json: sha256 .* is not the announced 000000000000"):
        fetch_checkpoint(update.path, cache, timeout_s=10, expected_sha256=other)
    assert list(cache.iterdir()) == []


def test_server_down_and_server_hung_fail_within_the_timeout(tmp_path, silent_port):
    with CheckpointServer(tmp_path) as srv:
        dead = f"{srv.url}/v0001"  # a port that was just free: nothing listens there now
    cache = tmp_path / "cache"
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match=r"v0001/manifest.json: cannot reach the checkpoint server.*"
                                              r"checkpoint_server.listen"):
        fetch_checkpoint(dead, cache, timeout_s=2)
    with pytest.raises(CheckpointError, match=r"no answer within 0.5 s.*checkpoint_fetch_timeout_s"):
        fetch_checkpoint(f"http://127.0.0.1:{silent_port}/v0001", cache, timeout_s=0.5)
    assert time.monotonic() - t0 < 3.0
    assert list(cache.iterdir()) == []
    with CheckpointServer(tmp_path) as srv, pytest.raises(CheckpointError, match="HTTP 404"):  # no such version
        fetch_checkpoint(f"{srv.url}/v0007", cache, timeout_s=2)
    assert list(cache.iterdir()) == []


def test_server_serves_only_listed_files_of_published_versions(save_version, server, root, tmp_path):
    v1 = save_version(1)
    (v1 / "notes.txt").write_text("not in the manifest")
    (root / ".tmp-v0002-abc").mkdir()
    shutil.copy(v1 / "manifest.json", root / ".tmp-v0002-abc" / "manifest.json")
    outside = tmp_path / "outside"
    shutil.copytree(v1, outside)
    (root / "v0005").symlink_to(outside, target_is_directory=True)  # a version dir linking out of the root
    (tmp_path / "secret.txt").write_text("secret")

    def status(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", path)
        code = conn.getresponse().status
        conn.close()
        return code

    assert status("/v0001/manifest.json") == 200 and status(f"/v0001/{MODEL_FILE}") == 200
    for path in ("/v0001/../../secret.txt", "/v0001/..%2f..%2fsecret.txt", "/%2e%2e/secret.txt",
                 "/v0001/%2e%2e", "//etc/passwd", "/etc/passwd", f"/{tmp_path}/secret.txt", "/latest",
                 "/v0001/notes.txt", "/.tmp-v0002-abc/manifest.json", "/v0009/manifest.json",
                 "/v0005/manifest.json", "/v0001/", "/v0001"):
        assert status(path) == 404, path


def test_runner_swaps_to_a_policy_given_by_url_and_keeps_it_on_bad_ones(save_version, server, schema, obs,
                                                                         tmp_path, silent_port):
    v1, v2 = save_version(1), save_version(2)
    hung = f"http://127.0.0.1:{silent_port}"
    runner = PolicyRunner(schema, checkpoint_cache_dir=tmp_path / "cache", checkpoint_urls=[server.url, hung],
                          fetch_timeout_s=1.0)
    runner.request_load(server.announce(make_update(v1)))
    assert runner.wait_idle(30)
    good = runner.step(obs)
    assert runner.active_version == 1 and runner.active.path == f"{server.url}/v0001"
    assert [(k, p.version, p.status) for k, p in drain(runner)] == [(EVENT_ACTIVATED, 1, "ok")]

    # v2 corrupted on the learner: rejected with the file named, v1 keeps acting.
    bad = server.announce(make_update(v2))
    corrupt(v2 / MODEL_FILE)
    assert runner.request_load(bad)
    assert runner.wait_idle(30)
    np.testing.assert_array_equal(runner.step(obs), good)
    [(kind, payload)] = drain(runner)
    assert (kind, payload.version, payload.status) == (EVENT_REJECTED, 2, "rejected")
    assert f"{bad.path}/{MODEL_FILE}" in payload.reason and "does not match the manifest" in payload.reason
    assert runner.active_version == 1 and runner.stats.rejected == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["v0001"]

    # A hung server: the download runs on the loader thread, ticks keep acting with v1 until it times out.
    assert runner.request_load(replace(bad, version=3, path=f"{hung}/v0003"))
    t0 = time.monotonic()
    while not runner.wait_idle(0.0):
        np.testing.assert_array_equal(runner.step(obs), good)
        assert runner.stats.last_step_latency_s < 0.5
    assert time.monotonic() - t0 < 5.0
    [(kind, payload)] = drain(runner)
    assert kind == EVENT_REJECTED and "no answer within 1 s" in payload.reason

    # A URL outside checkpoint_urls is refused at admission, before any download.
    elsewhere = server.announce(make_update(save_version(4)))
    assert not runner.request_load(replace(elsewhere, path="http://127.0.0.1:1/v0004"))
    [(kind, payload)] = drain(runner)
    assert kind == EVENT_REJECTED and "inference.checkpoint_urls" in payload.reason
    assert runner.stats.rejected == 3 and runner.active_version == 1

    # And the next good version by URL still swaps in.
    runner.request_load(elsewhere)
    assert runner.wait_idle(30)
    runner.step(obs)
    assert runner.active_version == 4 and runner.stats.swaps == 2
    runner.close()


def test_runner_without_a_cache_dir_refuses_urls(save_version, server, schema):
    runner = PolicyRunner(schema)
    assert not runner.request_load(server.announce(make_update(save_version(1))))
    [(kind, payload)] = drain(runner)
    assert kind == EVENT_REJECTED and "checkpoint_cache_dir" in payload.reason
    runner.close()


def test_url_prefixes_listen_addresses_and_config(root):
    assert url_allowed("http://ws:8770/v0003", ["http://ws:8770"])
    assert url_allowed("http://WS:8770/learner/v0003", ["http://ws:8770/learner/"])
    for url in ("http://ws:87701/v0003", "http://ws:8770.evil.org/v0003", "https://ws:8770/v0003",
                "http://other:8770/v0003"):
        assert not url_allowed(url, ["http://ws:8770"]), url
    assert not url_allowed("http://ws:8770/learnerx/v0003", ["http://ws:8770/learner"])
    assert parse_listen("0.0.0.0:8770") == ("0.0.0.0", 8770)
    assert parse_listen("8770") == parse_listen(":8770") == ("127.0.0.1", 8770)
    with pytest.raises(CheckpointError, match="HOST:PORT"):
        parse_listen("ws:http")
    assert server_from_config({"listen": ""}, root) is None
    srv = server_from_config({"listen": "127.0.0.1:0", "url": "http://gpu-ws:8770/"}, root)
    try:
        assert srv.port > 0 and srv.url == "http://gpu-ws:8770"
        assert srv.url_for(root / "v0002") == "http://gpu-ws:8770/v0002"
        with pytest.raises(CheckpointError, match="not a version directory of the served root"):
            srv.url_for(root.parent / "elsewhere" / "v0002")
    finally:
        srv.close()


def test_truncated_download_and_full_disk_leave_nothing(save_version, server, tmp_path, monkeypatch):
    # A server that promises 1000 bytes, sends 10 and hangs up.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def answer_short():
        conn, _ = sock.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        conn.close()

    threading.Thread(target=answer_short, daemon=True).start()
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=r"v0001/manifest.json: got 10 of 1000 bytes; .*truncated in transit"):
        fetch_checkpoint(f"http://127.0.0.1:{sock.getsockname()[1]}/v0001", cache, timeout_s=5)
    sock.close()
    assert list(cache.iterdir()) == []

    update = server.announce(make_update(save_version(1)))

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointError, match=r"v0001: no space left in the checkpoint cache .*checkpoint_cache_dir"):
        fetch_checkpoint(update.path, cache, timeout_s=5, expected_sha256=update.sha256)
    monkeypatch.undo()
    assert list(cache.iterdir()) == []
