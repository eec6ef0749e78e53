"""Gamepad teleop through pygame's joystick API (Xbox layout): left stick x/y, right stick z/yaw,
A toggles gripper, Start = start, Y = success, B = fail, X = discard, LB = intervene, Back = home.

pygame API used: `pygame.init()`, `pygame.joystick.get_count()`, `pygame.joystick.Joystick(0)` with
`init()`, `get_axis(i)`, `get_button(i)`, and `pygame.event.pump()`. Injectable (`pg`) for tests.
"""

from __future__ import annotations

from robot_stack.teleop.device import TELEOPS, Teleop, TeleopSample

BUTTONS = {0: "gripper", 7: "start", 3: "success", 1: "fail", 2: "discard", 4: "intervene", 6: "home"}


@TELEOPS.register("gamepad")
class GamepadTeleop(Teleop):
    name = "gamepad"

    def __init__(self, scale=None, deadband: float = 0.15, pg=None):
        super().__init__(scale)
        self.deadband, self._pg, self._js = deadband, pg, None
        self._pressed: set[int] = set()

    def connect(self) -> None:
        if self._pg is None:
            try:
                import pygame
            except ImportError as e:
                raise ImportError("gamepad teleop needs pygame (`pip install pygame`)") from e
            self._pg = pygame
        self._pg.init()
        if self._pg.joystick.get_count() == 0:
            raise RuntimeError("no gamepad found: plug it in (check `ls /dev/input/js*`)")
        self._js = self._pg.joystick.Joystick(0)
        self._js.init()

    def read(self) -> TeleopSample:
        self._pg.event.pump()
        ax = [self._js.get_axis(i) for i in range(4)]
        # Stick up is negative on every common pad.
        unit = [-ax[1], -ax[0], -ax[3], 0.0, 0.0, -ax[2]]
        unit = [0.0 if abs(v) < self.deadband else float(v) for v in unit]
        events = []
        now = {b for b in BUTTONS if self._js.get_button(b)}
        for b in sorted(now - self._pressed):
            if BUTTONS[b] == "gripper":
                self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
            else:
                events.append(BUTTONS[b])
        self._pressed = now
        return TeleopSample(self._action(unit), events)
