"""Checkpoints over the network: a learner on another machine serves its checkpoint root, the robot downloads.

    learner machine                                    robot computer
    save_checkpoint ─► root/v0003/ (published)         policy_update {"path": "http://ws:8770/v0003",
    CheckpointServer(root) ─► GET /v0003/<file> ◄────    "sha256": <of manifest.json>, ...}
    announce(update): path -> http://ws:8770/v0003 ─►  PolicyRunner loader thread:
                                                         fetch_checkpoint(uri, cache_dir)
                                                           manifest.json (sha256 == update.sha256?)
                                                           ─► every file it lists, hashed as it arrives
                                                           ─► cache_dir/.tmp-v0003-*/ ─► verify_checkpoint
                                                           ─► fsync ─► rename to cache_dir/v0003
                                                         ─► load_policy(cache_dir/v0003) as for a local path

Trust: the policy_update's sha256 pins manifest.json, which pins every other file, so whatever carries the
bytes (plain HTTP on the lab network included) cannot change the weights without the load being rejected.
The transport is not confidential: anyone on that network can read the weights. The server is read-only,
serves only the files a published `v####` directory's manifest lists (never `.tmp-*` dirs, `latest`, `..`,
or a symlink that leaves the root) and binds 127.0.0.1 unless told otherwise.

A failed fetch raises CheckpointError naming the URL and the fix and leaves nothing in the cache; a
verified copy in the cache (same manifest hash) is reused, so rollback works while the learner is down.
One fetcher per cache directory at a time (the inference node's loader thread). Stdlib only, no torch.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from robot_stack.policies.checkpoint import (
    _VERSION_DIR,
    MANIFEST_FILE,
    CheckpointError,
    Manifest,
    _fsync_path,
    read_manifest,
    sha256_file,
    verify_checkpoint,
    version_dir_name,
)

if TYPE_CHECKING:
    from robot_stack.inference.manifest import PolicyUpdate

log = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https")
# A manifest is a few hundred bytes per file; anything near this is not one of ours.
_MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20


def is_remote(path: str) -> bool:
    """True if a policy_update path is an http(s) URL rather than a filesystem path."""
    return urllib.parse.urlsplit(path).scheme.lower() in URL_SCHEMES


def url_allowed(url: str, prefixes) -> bool:
    """True if `url` lies under one of the URL `prefixes`: same scheme and host:port, and a path below the
    prefix's path (so "http://ws:8770" admits neither "http://ws:87701/..." nor "http://ws:8770.evil/...")."""
    u = urllib.parse.urlsplit(url)
    for prefix in prefixes:
        p = urllib.parse.urlsplit(str(prefix))
        base = p.path.rstrip("/") + "/"
        if (u.scheme.lower(), u.netloc.lower()) == (p.scheme.lower(), p.netloc.lower()) and \
                (u.path.rstrip("/") + "/").startswith(base):
            return True
    return False


def _safe_file_name(name: str) -> bool:
    # The same rule verify_checkpoint applies, checked before a name from the network becomes a path.
    return not ("/" in name or "\\" in name or "\x00" in name or name in ("", ".", "..") or name.startswith("."))


# ---- server (learner side) ----------------------------------------------------------------------
def parse_listen(listen: str) -> tuple[str, int]:
    """"HOST:PORT", ":PORT" or "PORT" -> (host, port); the host defaults to 127.0.0.1 (this machine only)."""
    text = str(listen).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        port_n = int(port)
    except ValueError:
        raise CheckpointError(f"checkpoint server address {listen!r} is not HOST:PORT (e.g. 0.0.0.0:8770)") from None
    if not 0 <= port_n <= 65535:
        raise CheckpointError(f"checkpoint server port {port_n} is outside 0..65535")
    return host or "127.0.0.1", port_n


class CheckpointServer:
    """Serves `root_dir/v####/<file>` read-only over HTTP from a daemon thread (see module docstring).

    port 0 binds an ephemeral port; `port` and `url` say what was bound. `advertise_url` is the base URL the
    robot reaches this server at (a bind to 0.0.0.0 is not an address anyone can connect to); default:
    http://<host>:<port>, with this machine's host name for a wildcard bind.
    """

    def __init__(self, root_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                 advertise_url: str | None = None):
        self.root_dir = Path(root_dir)
        try:
            self._httpd = ThreadingHTTPServer((host, int(port)), _handler_for(self))
        except OSError as e:
            raise CheckpointError(f"cannot serve checkpoints on {host}:{port} ({e}); pass a free port "
                                  "(checkpoint_server.listen=HOST:PORT, or port 0 for any)") from None
        self._httpd.daemon_threads = True  # a stalled client never holds up shutdown
        self.host, self.port = host, int(self._httpd.server_address[1])
        if advertise_url:
            self.url = str(advertise_url).rstrip("/")
        else:
            shown = socket.gethostname() if host in ("", "0.0.0.0") else host
            self.url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> CheckpointServer:
        # Polled every 0.1 s for shutdown, so close() (learner exit, tests) returns at once.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.1,), name="checkpoint-server",
                                        daemon=True)
        self._thread.start()
        log.info("serving checkpoints of %s on %s:%d as %s", self.root_dir, self.host, self.port, self.url)
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CheckpointServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def url_for(self, checkpoint_dir: str | Path) -> str:
        """The URL of a published version directory of this server's root."""
        ckpt = Path(checkpoint_dir)
        if not _VERSION_DIR.match(ckpt.name) or os.path.realpath(ckpt.parent) != os.path.realpath(self.root_dir):
            raise CheckpointError(f"{ckpt} is not a version directory of the served root {self.root_dir}; "
                                  "save checkpoints under the root the server was started on")
        return f"{self.url}/{ckpt.name}"

    def announce(self, update: PolicyUpdate) -> PolicyUpdate:
        """The same policy_update with its path replaced by this server's URL (sha256 etc. unchanged)."""
        return replace(update, path=self.url_for(update.path))

    def resolve(self, url_path: str) -> Path | None:
        """The file a request path names, or None (-> 404) unless it is manifest.json or a file the manifest of
        a published `v####` directory lists, and resolves (symlinks followed) inside the root."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != "" or not _VERSION_DIR.match(parts[1]) or not _safe_file_name(parts[2]):
            return None
        root = os.path.realpath(self.root_dir)
        vdir = Path(root) / parts[1]
        try:
            listed = read_manifest(vdir).files if parts[2] != MANIFEST_FILE else {}
        except CheckpointError:
            return None
        if parts[2] != MANIFEST_FILE and parts[2] not in listed:
            return None
        real = os.path.realpath(vdir / parts[2])
        if os.path.commonpath([real, root]) != root or not os.path.isfile(real):
            return None
        return Path(real)


def _handler_for(server: CheckpointServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "robot_stack-checkpoints"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            file = server.resolve(self.path)
            if file is None:
                self.send_error(404, "not a file of a published checkpoint")
                return
            try:
                f = open(file, "rb")  # noqa: SIM115 - streamed below, closed in finally
            except OSError:
                self.send_error(404, "not a file of a published checkpoint")
                return
            try:
                size = os.fstat(f.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if body:
                    shutil.copyfileobj(f, self.wfile, _CHUNK)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): nothing to do
                pass
            finally:
                f.close()

        def log_message(self, fmt: str, *args) -> None:
            log.debug("checkpoint server %s: " + fmt, self.address_string(), *args)

    return Handler


# ---- fetcher (robot side) -----------------------------------------------------------------------
def fetch_checkpoint(uri: str, cache_dir: str | Path, timeout_s: float = 60.0,
                     expected_sha256: str | None = None) -> Path:
    """Download the checkpoint at `uri` (http(s)://host:port/.../v####) into `cache_dir/v####`; returns that path.

    `expected_sha256` is the policy_update's sha256 (of manifest.json): the manifest must match it, and every
    file its hash in the manifest. `timeout_s` bounds the whole fetch (checked between reads; one stalled read
    waits at most the time that was left when its file started). A cached copy with the same manifest hash
    that still verifies is returned without a download. Raises CheckpointError naming the URL and the fix; a
    failed fetch leaves no directory behind.
    """
    base = str(uri).rstrip("/")
    split = urllib.parse.urlsplit(base)
    name = split.path.rsplit("/", 1)[-1]
    if split.scheme.lower() not in URL_SCHEMES or not split.netloc or not _VERSION_DIR.match(name):
        raise CheckpointError(f"{uri!r} is not an http(s) URL of a checkpoint version directory "
                              "(http://HOST:PORT/v0003); announce what the learner's checkpoint server gives")
    cache = Path(cache_dir)
    final = cache / name
    cached = _cached(final, expected_sha256)
    if cached is not None:
        log.info("checkpoint %s: using the verified copy in %s", uri, final)
        return cached
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the checkpoint cache {cache} ({e}); set checkpoint_cache_dir to a "
                              "writable directory") from None
    for stale in cache.glob(".tmp-*"):  # left by a crash during an earlier fetch (one fetcher per cache)
        shutil.rmtree(stale, ignore_errors=True)
    deadline = time.monotonic() + float(timeout_s)
    tmp = cache / f".tmp-{name}-{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        _download(f"{base}/{MANIFEST_FILE}", tmp / MANIFEST_FILE, deadline, timeout_s, None, _MAX_MANIFEST_BYTES)
        manifest_sha = sha256_file(tmp / MANIFEST_FILE)
        if expected_sha256 is not None and manifest_sha != expected_sha256:
            raise CheckpointError(f"{base}/{MANIFEST_FILE}: sha256 {manifest_sha[:12]}… is not the announced "
                                  f"{expected_sha256[:12]}…; the learner's {name} changed after it was announced "
                                  "(or another server answers at that address): re-announce it from the learner")
        manifest = _read_remote_manifest(tmp, base)
        if version_dir_name(manifest.version) != name:
            raise CheckpointError(f"{base}/{MANIFEST_FILE} is version {manifest.version}, not {name}; the "
                                  "learner's checkpoint root is inconsistent, re-save the checkpoint")
        for file, sha in manifest.files.items():
            _download(f"{base}/{urllib.parse.quote(file)}", tmp / file, deadline, timeout_s, sha, None)
        try:
            verify_checkpoint(tmp)  # the one definition of a complete checkpoint (required files, every hash)
        except CheckpointError as e:
            raise CheckpointError(f"{base}: downloaded copy does not verify ({e})") from None
        _fsync_path(tmp)
        _install(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise _disk_error(e, cache, base) from None
        raise
    log.info("fetched checkpoint %s into %s", uri, final)
    return final


def _cached(final: Path, expected_sha256: str | None) -> Path | None:
    """`final` if it is a complete, verified copy whose manifest hash is `expected_sha256` (any, if None)."""
    if not (final / MANIFEST_FILE).is_file() or any(p.is_symlink() for p in final.iterdir()):
        return None
    if expected_sha256 is not None and sha256_file(final / MANIFEST_FILE) != expected_sha256:
        return None  # another checkpoint under the same version name (a new learner root): download again
    try:
        verify_checkpoint(final)
    except CheckpointError as e:
        log.warning("cached checkpoint %s does not verify (%s); downloading it again", final, e)
        return None
    return final


def _install(tmp: Path, final: Path) -> None:
    """Rename the verified download into place; an older copy under that name (not the announced hash or
    corrupt) is moved aside first and deleted, so `final` is never a half-written directory."""
    aside = None
    if final.exists():
        aside = final.parent / f".tmp-old-{final.name}-{uuid.uuid4().hex}"
        os.rename(final, aside)
    os.rename(tmp, final)
    _fsync_path(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _read_remote_manifest(tmp: Path, base: str) -> Manifest:
    try:
        manifest = read_manifest(tmp)
    except CheckpointError as e:
        raise CheckpointError(f"{base}/{MANIFEST_FILE}: {e}") from None
    bad = [f for f in manifest.files if not _safe_file_name(f) or f == MANIFEST_FILE]
    if bad:
        raise CheckpointError(f"{base}/{MANIFEST_FILE} lists invalid file names {bad}; the server is not a "
                              "robot_stack checkpoint server or the checkpoint is corrupt, re-save it")
    return manifest


def _download(url: str, dest: Path, deadline: float, timeout_s: float, sha256: str | None,
              max_bytes: int | None) -> None:
    """GET `url` into `dest` (fsynced), hashing as it arrives; CheckpointError naming the URL on any failure."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CheckpointError(f"{url}: the fetch took longer than {timeout_s:g} s; check the network to the "
                              "learner or raise inference.checkpoint_fetch_timeout_s")
    h = hashlib.sha256()
    got = 0
    try:
        with urllib.request.urlopen(url, timeout=remaining) as resp:
            length = resp.headers.get("Content-Length")
            expected_len = int(length) if length is not None and length.isdigit() else None
            if max_bytes is not None and expected_len is not None and expected_len > max_bytes:
                raise CheckpointError(f"{url}: {expected_len} bytes is too large for a {dest.name}; the server is "
                                      "not a robot_stack checkpoint server")
            with open(dest, "wb") as f:
                while chunk := resp.read(_CHUNK):
                    got += len(chunk)
                    if max_bytes is not None and got > max_bytes:
                        raise CheckpointError(f"{url}: more than {max_bytes} bytes for a {dest.name}; the server "
                                              "is not a robot_stack checkpoint server")
                    h.update(chunk)
                    f.write(chunk)
                    if time.monotonic() > deadline:
                        raise CheckpointError(f"{url}: the fetch took longer than {timeout_s:g} s; check the "
                                              "network to the learner or raise inference.checkpoint_fetch_timeout_s")
                f.flush()
                os.fsync(f.fileno())
    except urllib.error.HTTPError as e:
        hint = ("the learner does not serve this checkpoint (never published, deleted, or another root); "
                "re-announce a current version" if e.code == 404 else "check the learner's checkpoint server log")
        raise CheckpointError(f"{url}: the server answered HTTP {e.code} {e.reason}; {hint}") from None
    except TimeoutError as e:  # a read timed out (socket.timeout is TimeoutError since 3.10)
        raise CheckpointError(f"{url}: no answer within {timeout_s:g} s ({e}); is the learner's checkpoint server "
                              "up and reachable? (raise inference.checkpoint_fetch_timeout_s for slow links)") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):  # the connect timed out (urlopen wraps it)
            raise CheckpointError(f"{url}: no answer within {timeout_s:g} s ({e.reason}); is the learner's "
                                  "checkpoint server up and reachable? (raise inference.checkpoint_fetch_timeout_s "
                                  "for slow links)") from None
        raise CheckpointError(f"{url}: cannot reach the checkpoint server ({e.reason}); start the learner with "
                              "checkpoint_server.listen=HOST:PORT and check the address, port and firewall") from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise CheckpointError(f"{url}: the download broke off after {got} bytes ({type(e).__name__}: {e}); "
                              "the file was truncated in transit, the next announcement retries") from None
    if expected_len is not None and got != expected_len:
        raise CheckpointError(f"{url}: got {got} of {expected_len} bytes; the file was truncated in transit, "
                              "the next announcement retries")
    if sha256 is not None and h.hexdigest() != sha256:
        raise CheckpointError(f"{url}: sha256 {h.hexdigest()[:12]}… does not match the manifest ({sha256[:12]}…); "
                              "the learner's file is corrupt or was modified after saving: re-save the checkpoint")


def _disk_error(e: OSError, cache: Path, base: str) -> CheckpointError:
    if e.errno == errno.ENOSPC:
        return CheckpointError(f"{base}: no space left in the checkpoint cache {cache}; free space there or set "
                               "inference.checkpoint_cache_dir to a larger disk")
    return CheckpointError(f"{base}: cannot write into the checkpoint cache {cache} ({e}); set "
                           "inference.checkpoint_cache_dir to a writable directory")


def server_from_config(section, root_dir: str | Path) -> CheckpointServer | None:
    """The started server a `checkpoint_server` config section asks for ({"listen": "HOST:PORT", "url": ...}),
    or None when `listen` is empty (the learner announces filesystem paths, as on one machine)."""
    listen = str((section or {}).get("listen") or "").strip()
    if not listen:
        return None
    host, port = parse_listen(listen)
    return CheckpointServer(root_dir, host, port, advertise_url=str(section.get("url") or "") or None).start()
