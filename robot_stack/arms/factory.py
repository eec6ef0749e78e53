"""Build an `Arm` from a rig config: `rig.driver` names a registered driver; its module is imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from robot_stack.arms.arm import ARMS, Arm
from robot_stack.registry import import_registering_module

# driver name -> module that registers it (imported only when that driver is asked for). The SDK fake lives in
# the test-support package installed alongside; it is named here, never imported by the product package.
DRIVER_MODULES = {
    "sim": "robot_stack.arms.sim_arm",
    "widowx": "robot_stack.arms.widowx",
    "fake_interbotix": "robot_stack_testing.fake_interbotix",
    "franka": "robot_stack.arms.franka",
}
_CONFIGS = {"widowx": "WidowXConfig", "fake_interbotix": "WidowXConfig", "franka": "FrankaConfig"}
_CONFIG_MODULES = {"WidowXConfig": "robot_stack.arms.widowx", "FrankaConfig": "robot_stack.arms.franka"}


def make_arm(driver: str, settings: Mapping, node=None) -> Arm:
    """A connected-later real-arm driver (`widowx`, `franka` or their fakes) from plain settings."""
    if driver in DRIVER_MODULES:
        import_registering_module(DRIVER_MODULES[driver], f"arm driver {driver!r}")
    cls = ARMS.get(driver)
    if driver not in _CONFIGS:
        raise ValueError(f"arm driver {driver!r} is not built from settings (the sim arm needs the simulation)")
    cfg_name = _CONFIGS[driver]
    cfg_cls = getattr(importlib.import_module(_CONFIG_MODULES[cfg_name]), cfg_name)
    return cls(cfg_cls.from_mapping(dict(settings)), node=node)
