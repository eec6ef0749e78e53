"""Teleop devices against fakes at their vendor boundary (pyspacemouse / pygame / the TTY), the replay
device, and the collection session's episode logic (incl. intervention mode) against a fake rig client."""

import json
import types

import numpy as np
import pytest

from robot_stack.teleop.device import TELEOPS
from robot_stack.teleop.factory import make_teleop
from robot_stack.teleop.gamepad import GamepadTeleop
from robot_stack.teleop.keyboard import KeyboardTeleop
from robot_stack.teleop.session import CollectSession, TeleopLink
from robot_stack.teleop.spacemouse import SpaceMouseTeleop


def test_keyboard_keys_to_motion_gripper_and_events():
    keys = iter(["w", "d ", "\ny", ""])
    kb = KeyboardTeleop(key_source=lambda: next(keys))
    a = kb.read().action
    np.testing.assert_allclose(a, [0.02, 0, 0, 0, 0, 0, 1.0])
    s = kb.read()
    np.testing.assert_allclose(s.action, [0, -0.02, 0, 0, 0, 0, 0.0])  # space closed the gripper
    assert kb.read().events == ["start", "success"]
    assert np.allclose(kb.read().action[:6], 0) and kb.read.__self__.gripper == 0.0


class FakeSpaceMouseHID:
    """pyspacemouse's documented surface: open() -> truthy, read() -> state(x..yaw, buttons)."""

    def __init__(self, states):
        self.states = list(states)

    def open(self):
        return True

    def read(self):
        return self.states.pop(0)


def _sm(x=0.0, y=0.0, z=0.0, roll=0.0, pitch=0.0, yaw=0.0, buttons=(0, 0)):
    return types.SimpleNamespace(x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw, buttons=list(buttons))


def test_spacemouse_axes_deadband_buttons():
    hid = FakeSpaceMouseHID([_sm(y=0.5, x=0.05), _sm(z=1.0, buttons=(1, 0)), _sm(buttons=(1, 1)), _sm(buttons=(0, 1)),
                             _sm(buttons=(0, 0)), _sm(buttons=(0, 1))])
    sm = SpaceMouseTeleop(hid=hid)
    sm.connect()
    np.testing.assert_allclose(sm.read().action, [0.01, 0, 0, 0, 0, 0, 1.0])  # x inside the deadband
    s = sm.read()
    assert s.action[2] == pytest.approx(0.02) and s.action[6] == 0.0
    assert sm.read().events == ["start"] and sm.read().events == [] and sm.read().events == []
    assert sm.read().events == ["success"]


def test_spacemouse_missing_device_names_the_fix():
    sm = SpaceMouseTeleop(hid=types.SimpleNamespace(open=lambda: False))
    with pytest.raises(RuntimeError, match="udev"):
        sm.connect()


class FakePygame:
    """pygame's joystick surface: init, joystick.get_count/Joystick(i).init/get_axis/get_button, event.pump."""

    def __init__(self, frames):
        self.frames, self.i = frames, -1
        outer = self

        class Joystick:
            def __init__(self, idx):
                pass

            def init(self):
                pass

            def get_axis(self, a):
                return outer.frames[outer.i][0][a]

            def get_button(self, b):
                return int(b in outer.frames[outer.i][1])

        self.joystick = types.SimpleNamespace(get_count=lambda: 1, Joystick=Joystick)
        self.event = types.SimpleNamespace(pump=self._pump)

    def init(self):
        pass

    def _pump(self):
        self.i += 1


def test_gamepad_sticks_and_edge_triggered_buttons():
    pg = FakePygame([([0.0, -1.0, 0.0, 0.0], {7}), ([0.0, 0.0, 0.0, 0.0], {7, 0}), ([0.1, 0.0, 0.0, 0.0], {4})])
    gp = GamepadTeleop(pg=pg)
    gp.connect()
    s = gp.read()
    assert s.action[0] == pytest.approx(0.02) and s.events == ["start"]
    s = gp.read()
    assert s.events == [] and s.action[6] == 0.0
    s = gp.read()
    assert s.events == ["intervene"] and np.allclose(s.action[:6], 0)


def test_replay_device_and_registry(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"action": [0.01, 0, 0, 0, 0, 0, 0], "events": ["start"]}) + "\n")
    dev = make_teleop("replay", 0.02, 0.1, str(p))
    dev.connect()
    s = dev.read()
    assert s.events == ["start"] and s.action[0] == 0.01
    assert dev.read().events == ["quit"] and dev.read().events == []
    assert {"keyboard", "spacemouse", "gamepad", "replay"} <= set(TELEOPS.names())
    p.write_text(json.dumps({"action": [0.0], "events": ["jump"]}) + "\n")
    with pytest.raises(ValueError, match="r.jsonl:1"):
        make_teleop("replay", 0.02, 0.1, str(p)).connect()


class FakeClient:
    def __init__(self):
        self.calls, self.n = [], 0

    def call(self, service, data=None, timeout_s=10.0):
        self.calls.append((service, data))
        return types.SimpleNamespace(success=True, message="")

    def call_json(self, service, data=None, timeout_s=10.0):
        self.calls.append((service, data))
        self.n += 1
        return {"episode": self.n - 1, "steps": 5, "dropped": 0}


def _link(events):
    link = TeleopLink()
    for e in events:
        link.events.put(e)
    return link


def test_session_start_keep_discard_and_resume_count():
    client = FakeClient()
    link = _link(["success", "start", "success", "start", "discard", "start", "fail"])
    resets = []
    rep = CollectSession(client, link, n_episodes=3, already=1, reset=lambda: resets.append(1), status=lambda s: None,
                         poll_s=0.001).run()
    assert rep.committed == [0, 1] and rep.discarded == 1 and rep.successes == 1
    assert ("recorder/stop", True) in client.calls and ("recorder/stop", False) in client.calls
    assert ("recorder/discard", None) in client.calls and len(resets) == 3
    assert not link.live
    assert CollectSession(client, _link([]), n_episodes=2, already=2, status=lambda s: None).run().committed == []


def test_intervention_mode_hands_over_and_back():
    client = FakeClient()
    link = _link(["start", "intervene", "intervene", "success"])
    states = []
    orig = link.set_live
    link.set_live = lambda v: (states.append(v), orig(v))
    rep = CollectSession(client, link, n_episodes=1, policy_mode=True, status=lambda s: None, poll_s=0.001).run()
    enables = [d for s, d in client.calls if s == "inference/enable"]
    assert enables == [True, False, True, False]  # policy, person takes over, hand back, episode end
    assert states[:4] == [False, True, False, False] and rep.interventions == 1


def test_home_key_on_keyboard_gamepad_and_replay(tmp_path):
    keys = iter(["h"])
    assert KeyboardTeleop(key_source=lambda: next(keys)).read().events == ["home"]
    from robot_stack.teleop.gamepad import BUTTONS

    assert BUTTONS[6] == "home"
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"action": [0] * 6 + [1], "events": ["home"]}) + "\n")
    dev = make_teleop("replay", 0.02, 0.1, str(path))
    dev.connect()
    assert dev.read().events == ["home"]
