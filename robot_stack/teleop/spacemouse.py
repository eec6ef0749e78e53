"""3Dconnexion SpaceMouse through pyspacemouse (hidapi). Axes -> ee_delta; left button toggles the gripper,
right button = start/success (press once to start, again to end an episode as a success).

pyspacemouse API used: `open() -> device or None`, `read() -> state` with x, y, z, roll, pitch, yaw in
[-1, 1] and `buttons` (list of 0/1). The module is injectable (`hid`), so tests use fake_hid.
"""

from __future__ import annotations

from robot_stack.teleop.device import TELEOPS, Teleop, TeleopSample


def _import_pyspacemouse():
    try:
        import pyspacemouse
    except ImportError as e:
        raise ImportError("SpaceMouse teleop needs pyspacemouse + hidapi (`pip install pyspacemouse`; on Debian "
                          "`apt install libhidapi-hidraw0` and a udev rule for the device)") from e
    return pyspacemouse


@TELEOPS.register("spacemouse")
class SpaceMouseTeleop(Teleop):
    name = "spacemouse"

    def __init__(self, scale=None, deadband: float = 0.1, hid=None):
        super().__init__(scale)
        self.deadband = deadband  # the puck never rests at exactly 0: without a deadband the arm creeps
        self._hid = hid
        self._buttons = [0, 0]
        self._recording = False

    def connect(self) -> None:
        self._hid = self._hid or _import_pyspacemouse()
        if not self._hid.open():
            raise RuntimeError("no SpaceMouse found: plug it in and check /dev/hidraw* permissions (udev rule)")

    def read(self) -> TeleopSample:
        s = self._hid.read()
        # SpaceMouse frame: x right, y forward, z up; robot base: x forward, y left.
        unit = [s.y, -s.x, s.z, -s.pitch, s.roll, -s.yaw]
        unit = [0.0 if abs(v) < self.deadband else float(v) for v in unit]
        events = []
        buttons = list(s.buttons)[:2] + [0] * (2 - len(list(s.buttons)[:2]))
        if buttons[0] and not self._buttons[0]:
            self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
        if buttons[1] and not self._buttons[1]:
            events.append("success" if self._recording else "start")
            self._recording = not self._recording
        self._buttons = buttons
        return TeleopSample(self._action(unit), events)
