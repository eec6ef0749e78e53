"""Terminal keyboard teleop (no X server needed: reads the TTY in cbreak mode, non-blocking).

    w/s  +x/-x    a/d  +y/-y    r/f  +z/-z    q/e  yaw +/-    space  toggle gripper
    Enter start   y    success  n    fail      x    discard     i      intervene    Esc quit
    h     home (calibrate home: these joints are the home pose)

A key press moves one full step (keys auto-repeat while held).
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable

from robot_stack.teleop.device import TELEOPS, Teleop, TeleopSample

MOTION = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1), "q": (5, 1), "e": (5, -1)}
EVENT_KEYS = {"\n": "start", "\r": "start", "y": "success", "n": "fail", "x": "discard", "i": "intervene",
              "h": "home", "\x1b": "quit"}


def _tty_keys() -> str:
    """All keys waiting on stdin, without blocking ('' if none)."""
    out = ""
    while select.select([sys.stdin], [], [], 0)[0]:
        ch = os.read(sys.stdin.fileno(), 1).decode(errors="ignore")
        if not ch:
            break
        out += ch
    return out


@TELEOPS.register("keyboard")
class KeyboardTeleop(Teleop):
    name = "keyboard"

    def __init__(self, scale=None, key_source: Callable[[], str] | None = None):
        super().__init__(scale)
        self._keys = key_source or _tty_keys
        self._saved = None

    def connect(self) -> None:
        if self._keys is _tty_keys:
            import termios
            import tty

            if not sys.stdin.isatty():
                raise RuntimeError("keyboard teleop needs an interactive terminal (or use teleop.device=spacemouse)")
            self._saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())

    def disconnect(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> TeleopSample:
        unit = [0.0] * 6
        events: list[str] = []
        for ch in self._keys():
            c = ch.lower() if ch not in EVENT_KEYS else ch
            if c in MOTION:
                axis, sign = MOTION[c]
                unit[axis] = float(sign)
            elif c == " ":
                self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
            elif c in EVENT_KEYS:
                events.append(EVENT_KEYS[c])
        return TeleopSample(self._action(unit), events)
