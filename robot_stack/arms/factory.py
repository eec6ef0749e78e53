"""Build an `Arm` from a rig config: `rig.driver` names a registered driver; its module is imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from robot_stack.arms.arm import ARMS, Arm

# driver name -> module that registers it (imported only when that driver is asked for)
DRIVER_MODULES = {
    "sim": "robot_stack.arms.sim_arm",
    "widowx": "robot_stack.arms.widowx",
    "fake_interbotix": "robot_stack.arms.fake_interbotix",
    "franka": "robot_stack.arms.franka",
}
_CONFIGS = {"widowx": "WidowXConfig", "fake_interbotix": "WidowXConfig", "franka": "FrankaConfig"}
_CONFIG_MODULES = {"WidowXConfig": "robot_stack.arms.widowx", "FrankaConfig": "robot_stack.arms.franka"}


def make_arm(driver: str, settings: Mapping, node=None) -> Arm:
    """A connected-later real-arm driver (`widowx`, `franka` or their fakes) from plain settings."""
    if driver in DRIVER_MODULES:
        importlib.import_module(DRIVER_MODULES[driver])
    cls = ARMS.get(driver)
    if driver not in _CONFIGS:
        raise ValueError(f"arm driver {driver!r} is not built from settings (the sim arm needs the simulation)")
    cfg_name = _CONFIGS[driver]
    cfg_cls = getattr(importlib.import_module(_CONFIG_MODULES[cfg_name]), cfg_name)
    return cls(cfg_cls.from_mapping(dict(settings)), node=node)
