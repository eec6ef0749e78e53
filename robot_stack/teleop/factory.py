"""Build a teleop device from `teleop.device` + its settings; modules are imported only when named."""

from __future__ import annotations

import importlib

from robot_stack.teleop.device import TELEOPS, Teleop, TeleopScale

MODULES = {"keyboard": "robot_stack.teleop.keyboard", "spacemouse": "robot_stack.teleop.spacemouse",
           "gamepad": "robot_stack.teleop.gamepad", "replay": "robot_stack.teleop.replay"}


def make_teleop(device: str, max_step_m: float, max_step_rad: float, path: str = "") -> Teleop:
    if device not in MODULES:
        raise ValueError(f"unknown teleop device {device!r}; known: {sorted(MODULES)}")
    importlib.import_module(MODULES[device])
    scale = TeleopScale(max_step_m, max_step_rad)
    cls = TELEOPS.get(device)
    return cls(path, scale) if device == "replay" else cls(scale)
