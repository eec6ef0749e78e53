"""The dashboard's web server: FastAPI routes over a DashboardHub (live ROS data) and a StoreView (disk).

    GET  /                                   the page (static/, shipped in the package; nothing fetched at run time)
    GET  /api/state        WS /ws            hub snapshot (WebSocket: pushed when it changes, <= 4 Hz, >= 1 Hz)
    GET  /api/cameras/<camera>.jpg           newest thumbnail of a camera
    GET  /api/episodes                       the store's episodes
    GET  /api/episodes/<i>/frames/<t>.jpg?camera=front   one recorded frame (thumbnail strip, replay)
    POST /api/episodes/<i>/exclude  {"id": "<episode_id>", "excluded": true|false}        token
    GET  /api/checkpoints                    checkpoint versions on disk + what the inference node reported
    POST /api/estop  {"engage": true}                                                    never needs a token
    POST /api/estop  {"engage": false, "confirm": "release"}                             token
    POST /api/rollback {"confirm": "rollback"}                                           token

Token rule (DashboardSecurity): bound to a loopback address (the default, 127.0.0.1), nobody off this machine
can reach the server and no token is asked for. Bound to any other address, a token is required for everything
that moves the arm or edits data (e-stop release, rollback, exclude/include), sent as `X-Dashboard-Token` or
`Authorization: Bearer`. Engaging the e-stop never needs one: a stop must never be blocked by a login.
Reading (the page, live values, episodes) stays open so a wall screen can show the rig.

Other web pages open in the operator's browser must not drive the rig through it: a POST whose Origin is not
this server is refused (cross-site requests), and on loopback a request whose Host is not a loopback name is
refused (DNS rebinding: a foreign page that re-resolves its own name to 127.0.0.1).

Handlers never touch rclpy: commands are queued on the hub and answered by the bridge node.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at run time, and the
# request models are local to create_app (fastapi stays an optional import).
import asyncio
import hmac
import ipaddress
import logging
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from robot_stack.conf import ConfigError
from robot_stack.dashboard.hub import CommandTimeout, DashboardHub, encode_jpeg, thumbnail
from robot_stack.dashboard.store_view import EpisodeMismatch, EpisodeNotFound, StoreView, checkpoint_versions

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Dashboard-Token"
STATIC_DIR = resources.files("robot_stack.dashboard") / "static"
_PUSH_MIN_PERIOD_S = 0.25   # at most 4 pushes a second: enough for status, cheap for a 2-core rig PC
_PUSH_MAX_PERIOD_S = 1.0    # at least one a second, so the ages (staleness) on the page keep moving


class DashboardConfigError(ConfigError):
    """A host/port/token combination that must not start; the message names the fix (printed without a
    traceback: a ConfigError is an operator error, robot_stack/errors.py)."""


_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header}").hostname or "").lower()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a LAN address, so treat it as exposed


class DashboardSecurity:
    def __init__(self, host: str, token: str = ""):
        self.host, self.token = str(host), str(token or "")
        self.token_required = not is_loopback(self.host)
        if self.token_required and len(self.token) < 12:
            raise DashboardConfigError(
                f"the dashboard binds {self.host!r}, which other machines can reach, so it needs a token of at "
                "least 12 characters for e-stop release, rollback and episode edits: set dashboard.token=<secret> "
                "(or ROBOT_STACK_DASHBOARD_TOKEN), or bind dashboard.host=127.0.0.1")

    def foreign_request(self, method: str, headers) -> str | None:
        """Why a request from another web page must be refused (see module docstring), else None."""
        host = headers.get("host", "")
        if not self.token_required and _hostname(host) not in _LOOPBACK_NAMES:
            return (f"Host {host!r} is not this machine's loopback address; open the dashboard as "
                    "http://127.0.0.1:<port>/ (requests through other names are refused: DNS rebinding)")
        origin = headers.get("origin")
        if method not in ("GET", "HEAD", "OPTIONS") and origin is not None and urlsplit(origin).netloc != host:
            return f"cross-origin request from {origin!r} refused: only the dashboard's own page may send commands"
        return None

    def check(self, headers) -> str | None:
        """None if the request may move the arm / edit data, else the reason (the 401/403 message)."""
        if not self.token_required:
            return None
        given = headers.get(TOKEN_HEADER.lower(), "")
        auth = headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            return (f"this action needs the dashboard token (the server is bound to {self.host}); enter it in the "
                    f"page's token field or send the {TOKEN_HEADER} header")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "wrong dashboard token"
        return None


def create_app(hub: DashboardHub, store: StoreView | None, checkpoints: str | Path | None,
               security: DashboardSecurity, command_timeout_s: float = 5.0):
    from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict

    app = FastAPI(title="robot_stack dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        problem = security.foreign_request(request.method, request.headers)
        if problem is not None:
            return JSONResponse({"detail": problem}, status_code=403)
        return await call_next(request)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    class _Body(BaseModel):
        model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored

    class EstopBody(_Body):
        engage: bool
        confirm: Literal["release"] | None = None

    class RollbackBody(_Body):
        confirm: Literal["rollback"]

    class ExcludeBody(_Body):
        id: str
        excluded: bool

    def authorise(request: Request) -> None:
        problem = security.check(request.headers)
        if problem is not None:
            status = 401 if problem.startswith("this action needs") else 403
            raise HTTPException(status, problem)

    def run_command(kind: str) -> JSONResponse:
        try:
            result = hub.submit(kind, timeout_s=command_timeout_s)
        except CommandTimeout as e:
            raise HTTPException(504, str(e)) from None
        return JSONResponse({"ok": result.ok, "message": result.message}, status_code=200 if result.ok else 409)

    def jpeg(data: bytes) -> Response:
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/", response_class=HTMLResponse)
    def index():
        return HTMLResponse((STATIC_DIR / "index.html").read_text(), headers={"Cache-Control": "no-store"})

    @app.get("/api/state")
    def state():
        return {**hub.snapshot(), "token_required": security.token_required}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        sent_seq, since_push_s = -1, _PUSH_MAX_PERIOD_S
        try:
            while True:
                seq = hub.seq
                if seq != sent_seq or since_push_s >= _PUSH_MAX_PERIOD_S:
                    await websocket.send_json({**hub.snapshot(), "token_required": security.token_required})
                    sent_seq, since_push_s = seq, 0.0
                await asyncio.sleep(_PUSH_MIN_PERIOD_S)
                since_push_s += _PUSH_MIN_PERIOD_S
        except (WebSocketDisconnect, RuntimeError):
            return  # the page closed or reloaded

    @app.get("/api/cameras/{camera}.jpg")
    def camera(camera: str):
        try:
            frame = hub.camera_jpeg(camera)
        except KeyError as e:
            raise HTTPException(404, e.args[0]) from None
        if frame is None:
            raise HTTPException(503, f"no frame from camera {camera!r} yet; is camera/{camera}/image_raw published?")
        return jpeg(frame[2])

    @app.post("/api/estop")
    def estop(body: EstopBody, request: Request):
        if body.engage:
            return run_command("estop_engage")  # never behind the token: see module docstring
        authorise(request)
        if body.confirm != "release":
            raise HTTPException(400, 'releasing the e-stop needs {"engage": false, "confirm": "release"}: the arm '
                                     "may move right after; the page asks the operator to confirm first")
        return run_command("estop_release")

    @app.post("/api/rollback")
    def rollback(body: RollbackBody, request: Request):
        authorise(request)
        return run_command("rollback")

    def need_store() -> StoreView:
        if store is None:
            raise HTTPException(404, "the dashboard was started without a store (set store=<path>)")
        return store

    @app.get("/api/episodes")
    def episodes():
        return need_store().summary()

    @app.get("/api/episodes/{index}/frames/{step}.jpg")
    def episode_frame(index: int, step: int, camera: str):
        try:
            image = need_store().frame(index, step, camera)
        except EpisodeNotFound as e:
            raise HTTPException(404, str(e)) from None
        return jpeg(encode_jpeg(thumbnail(image, hub.thumbnail_px)))

    @app.post("/api/episodes/{index}/exclude")
    def exclude(index: int, body: ExcludeBody, request: Request):
        authorise(request)
        try:
            return need_store().set_excluded(index, body.id, body.excluded)
        except EpisodeNotFound as e:
            raise HTTPException(404, str(e)) from None
        except EpisodeMismatch as e:
            raise HTTPException(409, str(e)) from None

    @app.get("/api/checkpoints")
    def checkpoints_():
        on_disk = checkpoint_versions(checkpoints) if checkpoints else []
        return {"root": None if checkpoints is None else str(checkpoints), "versions": on_disk,
                "policy": hub.snapshot()["policy"]}

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a 500 that says what broke, logged with its traceback
        log.exception("dashboard request %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return app


class DashboardServer:
    """uvicorn serving `app` in a background thread; the socket is bound in start(), so a busy port fails there
    with a clear message instead of inside uvicorn's thread."""

    def __init__(self, app, host: str, port: int):
        self.app, self.host, self.port = app, host, int(port)
        self._server = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        import time

        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise DashboardConfigError(f"cannot serve the dashboard on {self.host}:{self.port}: {e.strerror}; another "
                                       "dashboard may be running: set dashboard.port=<free port>") from None
        sock.listen(64)
        self._sock = sock
        self.port = sock.getsockname()[1]  # port 0 = any free port (tests)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, ws="websockets-sansio",
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the node process owns the signals
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="dashboard-http")
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DashboardConfigError(f"the dashboard web server did not start on {self.url}; see the log above")
            time.sleep(0.02)
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
