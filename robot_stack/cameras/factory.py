"""Build cameras from `rig.cameras.<name>` + calibration settings: `type` names a registered camera."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from robot_stack.cameras.camera import CAMERAS, Camera
from robot_stack.registry import import_registering_module

# camera type -> (module that registers it, its config class). The SDK fake lives in the test-support package
# installed alongside; it is named here, never imported by the product package.
CAMERA_MODULES = {
    "opencv": ("robot_stack.cameras.opencv_camera", "OpenCVCameraConfig"),
    "realsense": ("robot_stack.cameras.realsense", "RealSenseConfig"),
    "fake_realsense": ("robot_stack_testing.fake_realsense", "RealSenseConfig"),
}


def make_camera(name: str, settings: Mapping) -> Camera:
    """settings: {type, height, width, fps_hz, + the driver's own keys (serial, device, exposure_us, ...)}."""
    s = dict(settings)
    kind = s.pop("type", None)
    if kind not in CAMERA_MODULES:
        raise ValueError(f"camera {name}: type {kind!r} is not a real-rig camera; known: {sorted(CAMERA_MODULES)}")
    mod_name, cfg_name = CAMERA_MODULES[kind]
    mod = import_registering_module(mod_name, f"camera type {kind!r}")
    cfg_cls = getattr(importlib.import_module("robot_stack.cameras.realsense"), cfg_name) \
        if cfg_name == "RealSenseConfig" else getattr(mod, cfg_name)
    return CAMERAS.get(kind)(name, cfg_cls.from_mapping(s))
