"""Dashboard core without ROS: the FastAPI app (TestClient) over a real DashboardHub and a real zarr store.

A thread plays the bridge node's part of the hub interface (take_commands -> finish), so the token rules,
the command queue and the error answers are checked end to end through HTTP. The ROS wiring and the real
browser are tests/dashboard/test_browser.py.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from dashboard_data import EPISODES, make_store
from fastapi.testclient import TestClient

from robot_stack.dashboard.app import STATIC_DIR, DashboardConfigError, DashboardSecurity, create_app
from robot_stack.dashboard.hub import DashboardHub
from robot_stack.dashboard.store_view import StoreView
from robot_stack.store import TrajectoryStore

TOKEN = "s3cret-token-for-tests"


class Bridge:
    """Answers hub commands the way robot_stack.ros.dashboard_node does, recording what it was asked."""

    def __init__(self, hub: DashboardHub):
        self.hub, self.calls, self._stop = hub, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            for cmd in self.hub.take_commands():
                self.calls.append(cmd.kind)
                cmd.finish(cmd.kind != "rollback", "estopped" if cmd.kind == "estop_engage" else
                           "no good version to roll back to" if cmd.kind == "rollback" else "holding")
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self.thread.join(2)


@pytest.fixture(scope="module")
def template_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("dashboard") / "store.zarr")


@pytest.fixture
def store_path(template_store, tmp_path):
    # A copy per test: tests exclude episodes, and creating a store (fsyncs, zarr metadata) costs ~0.5 s.
    return Path(shutil.copytree(template_store, tmp_path / "store.zarr"))


@pytest.fixture
def make_client(store_path, tmp_path):
    made = []

    def make(host="127.0.0.1", token="", bridge=True, timeout_s=2.0):
        hub = DashboardHub(("front", "wrist"))
        view = StoreView(store_path)
        app = create_app(hub, view, tmp_path / "ckpt", DashboardSecurity(host, token), command_timeout_s=timeout_s)
        b = Bridge(hub) if bridge else None
        client = TestClient(app, base_url="http://127.0.0.1:8765")
        made.append((b, view))
        return client, hub, b

    yield make
    for b, view in made:
        if b is not None:
            b.stop()
        view.close()


def test_an_exposed_address_without_a_token_does_not_start():
    with pytest.raises(DashboardConfigError, match="dashboard.token"):
        DashboardSecurity("0.0.0.0", "")
    with pytest.raises(DashboardConfigError, match="12 characters"):
        DashboardSecurity("192.168.1.20", "short")
    for loopback in ("127.0.0.1", "localhost", "::1"):
        assert not DashboardSecurity(loopback).token_required
    assert DashboardSecurity("rig-pc.lab", TOKEN).token_required  # a host name may resolve to a LAN address


def test_loopback_needs_no_token_for_anything(make_client):
    client, _, bridge = make_client()
    assert client.post("/api/estop", json={"engage": True}).json() == {"ok": True, "message": "estopped"}
    assert client.post("/api/estop", json={"engage": False, "confirm": "release"}).status_code == 200
    r = client.post("/api/rollback", json={"confirm": "rollback"})
    assert r.status_code == 409 and "no good version" in r.json()["message"]  # the service's refusal, passed on
    assert bridge.calls == ["estop_engage", "estop_release", "rollback"]
    assert client.get("/api/state").json()["token_required"] is False


def test_exposed_address_engage_is_free_but_release_rollback_and_edits_need_the_token(make_client):
    client, _, bridge = make_client(host="0.0.0.0", token=TOKEN)
    ep = client.get("/api/episodes").json()["episodes"][0]
    # Engaging a stop is never blocked by a login.
    assert client.post("/api/estop", json={"engage": True}).status_code == 200
    for url, body in (("/api/estop", {"engage": False, "confirm": "release"}), ("/api/rollback", {"confirm": "rollback"}),
                      ("/api/episodes/0/exclude", {"id": ep["id"], "excluded": True})):
        r = client.post(url, json=body)
        assert r.status_code == 401 and "token" in r.json()["detail"], (url, r.text)
        r = client.post(url, json=body, headers={"X-Dashboard-Token": "wrong-token-123"})
        assert r.status_code == 403 and r.json()["detail"] == "wrong dashboard token", (url, r.text)
    assert bridge.calls == ["estop_engage"]  # nothing without the token reached the bridge
    ok = client.post("/api/estop", json={"engage": False, "confirm": "release"}, headers={"X-Dashboard-Token": TOKEN})
    assert ok.status_code == 200
    ok = client.post("/api/episodes/0/exclude", json={"id": ep["id"], "excluded": True},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["excluded"] is True
    assert bridge.calls == ["estop_engage", "estop_release"]
    assert client.get("/api/state").json()["token_required"] is True


@pytest.mark.parametrize("url,body,status,words", [
    ("/api/estop", {"engage": "maybe"}, 422, "valid boolean"),
    ("/api/estop", {"engage": True, "speed": 3}, 422, "Extra inputs"),
    ("/api/estop", {}, 422, "engage"),
    ("/api/estop", {"engage": False}, 400, '"confirm": "release"'),
    ("/api/estop", {"engage": False, "confirm": "yes"}, 422, "release"),
    ("/api/rollback", {}, 422, "confirm"),
    ("/api/episodes/7/exclude", {"id": "x", "excluded": True}, 404, "has 3 episodes"),
    ("/api/episodes/-1/exclude", {"id": "x", "excluded": True}, 404, "does not exist"),
    ("/api/episodes/0/exclude", {"id": "not-this-one", "excluded": True}, 409, "reload the episode list"),
    ("/api/episodes/0/exclude", {"excluded": True}, 422, "id"),
])
def test_bad_commands_get_a_clear_4xx(make_client, url, body, status, words):
    client, _, bridge = make_client()
    r = client.post(url, json=body)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json()["detail"]) or words in r.json()["detail"], r.text
    assert bridge.calls == []


def test_bad_reads_get_a_clear_4xx(make_client):
    client, _, _ = make_client()
    r = client.get("/api/cameras/rear.jpg")
    assert r.status_code == 404 and "front" in r.json()["detail"]
    r = client.get("/api/cameras/front.jpg")
    assert r.status_code == 503 and "camera/front/image_raw" in r.json()["detail"]
    r = client.get("/api/episodes/0/frames/99.jpg", params={"camera": "front"})
    assert r.status_code == 404 and "outside episode 0 (0..5)" in r.json()["detail"]
    r = client.get("/api/episodes/0/frames/0.jpg", params={"camera": "rear"})
    assert r.status_code == 404 and "['front', 'wrist']" in r.json()["detail"]
    assert client.get("/api/episodes/0/frames/0.jpg").status_code == 422  # camera is required


def test_other_web_pages_cannot_send_commands(make_client):
    client, _, bridge = make_client()
    r = client.post("/api/estop", json={"engage": False, "confirm": "release"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    # DNS rebinding: a foreign name resolved to 127.0.0.1 reaches the server with its own Host header.
    r = client.post("/api/estop", json={"engage": False, "confirm": "release"}, headers={"Host": "evil.example:8765"})
    assert r.status_code == 403 and "DNS rebinding" in r.json()["detail"]
    assert client.get("/api/state", headers={"Host": "evil.example"}).status_code == 403
    ok = client.post("/api/estop", json={"engage": True}, headers={"Origin": "http://127.0.0.1:8765"})
    assert ok.status_code == 200 and bridge.calls == ["estop_engage"]  # the page's own requests pass


def test_a_dead_bridge_times_out_and_the_stale_command_is_never_run(make_client):
    client, hub, _ = make_client(bridge=False, timeout_s=0.3)
    r = client.post("/api/estop", json={"engage": True})
    assert r.status_code == 504 and "hardware e-stop" in r.json()["detail"]
    assert hub.take_commands() == []  # withdrawn: a late bridge must not act on an answer the operator never got


def test_episode_list_exclude_include_go_through_the_store(make_client, store_path):
    client, _, _ = make_client()
    data = client.get("/api/episodes").json()
    assert data["exists"] and data["cameras"] == ["front", "wrist"]
    rows = data["episodes"]
    assert [(e["source"], e["phase"], e["success"], e["length"]) for e in rows] == EPISODES
    assert not any(e["excluded"] for e in rows)
    r = client.post("/api/episodes/1/exclude", json={"id": rows[1]["id"], "excluded": True})
    assert r.status_code == 200
    with TrajectoryStore.open(store_path, mode="r") as s:  # what the learner sees
        assert s.excluded_episodes() == {1} and 1 not in s.episodes()
    assert [e["excluded"] for e in client.get("/api/episodes").json()["episodes"]] == [False, True, False]
    assert client.post("/api/episodes/1/exclude", json={"id": rows[1]["id"], "excluded": False}).status_code == 200
    with TrajectoryStore.open(store_path, mode="r") as s:
        assert s.excluded_episodes() == set()


def test_episode_frames_are_the_recorded_frames(make_client):
    client, _, _ = make_client()
    r = client.get("/api/episodes/1/frames/4.jpg", params={"camera": "wrist"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    frame = imagecodecs.jpeg8_decode(r.content)
    assert frame.shape == (32, 32, 3) and abs(float(frame.mean()) - 40) < 3  # make_store fills step k with 10 * k


def test_live_values_flow_from_the_hub_to_state_websocket_and_camera(make_client):
    client, hub, _ = make_client()
    with client.websocket_connect("/ws") as ws:
        first = ws.receive_json()
        assert first["arm"]["status"] == {} and first["practice"]["status"] == {}
        hub.put_arm_status({"status": "ok", "reason": "", "executed": "3"})
        hub.put_arm_state(["waist", "gripper"], [0.1, 1.0], [0.25, 0.0, 0.16, 0, 0, 0, 1], 5)
        image = np.zeros((128, 96, 3), np.uint8)
        image[:, :48] = 200
        assert hub.put_camera_frame("front", image, 7)
        for _ in range(10):
            snap = ws.receive_json()
            if snap["cameras"]["front"] is not None and snap["arm"]["state"]:
                break
        assert snap["arm"]["status"]["status"] == "ok" and snap["arm"]["state"]["ee_xyz_m"] == [0.25, 0.0, 0.16]
        assert snap["cameras"]["front"] == {"seq": 1, "stamp_ns": 7} and snap["ages_s"]["camera/front"] < 3
    r = client.get("/api/cameras/front.jpg")
    thumb = imagecodecs.jpeg8_decode(r.content)
    assert thumb.shape == (128, 96, 3)  # within thumbnail_px=160: not scaled
    assert thumb[:, :40].mean() > 180 and thumb[:, 56:].mean() < 20


def test_hub_throttles_thumbnails_and_keeps_plot_series():
    now = [100.0]
    hub = DashboardHub(("front",), thumbnail_hz=4.0, thumbnail_px=32, clock=lambda: now[0])
    frame = np.full((64, 64, 3), 90, np.uint8)
    assert hub.put_camera_frame("front", frame, 1)
    assert not hub.camera_due("front") and not hub.put_camera_frame("front", frame, 2)
    now[0] += 0.25
    assert hub.put_camera_frame("front", frame, 3)
    seq, stamp, jpeg = hub.camera_jpeg("front")
    assert (seq, stamp) == (2, 3) and imagecodecs.jpeg8_decode(jpeg).shape == (32, 32, 3)
    with pytest.raises(KeyError, match="front"):
        hub.put_camera_frame("rear", frame, 4)
    # practice: each finished attempt counted once, per direction
    for status in ({"attempt": 1, "phase": "forward"},
                   {"attempt": 2, "phase": "backward", "result": {"attempt": 1, "phase": "forward", "success": True}},
                   {"attempt": 2, "phase": "backward", "result": {"attempt": 1, "phase": "forward", "success": True}},
                   {"attempt": 3, "phase": "forward", "result": {"attempt": 2, "phase": "backward", "success": False}}):
        hub.put_practice(status)
    hub.put_learner({"step": 10, "loss": 0.5, "steps_per_s": 3.0})
    hub.put_learner({"step": 20, "loss": 0.25, "critic_loss": 1.5})
    snap = hub.snapshot()
    assert snap["practice"]["success"] == {"forward": [[1.0, 1.0]], "backward": [[2.0, 0.0]]}
    assert snap["practice"]["status"]["attempt"] == 3
    assert snap["learner"]["losses"] == {"loss": [[10.0, 0.5], [20.0, 0.25]], "critic_loss": [[20.0, 1.5]]}
    now[0] += 10
    assert hub.snapshot()["ages_s"]["learner/status"] == 10.0  # the page greys it out (stale_after_s = 3)
    with pytest.raises(ValueError, match="unknown command"):
        hub.submit("home_arm")


def test_the_page_is_served_from_the_package_and_fetches_nothing_from_the_network(make_client):
    client, _, _ = make_client()
    page = client.get("/")
    assert page.status_code == 200 and 'id="estop-engage"' in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for a in assets:
        assert client.get(a).status_code == 200, a
    for f in STATIC_DIR.iterdir():
        urls = set(re.findall(r"https?://[^\s\"')]+", f.read_text())) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{f.name} references {urls}: the page must work without a network"
