"""A stand-in for the pyrealsense2 module (the subset RealSenseCamera uses), after the documented API:
context().query_devices() / get_info(camera_info.*), config.enable_device / enable_stream, pipeline.start /
try_wait_for_frames / stop, device.first_color_sensor().set_option(option.*), first_depth_sensor()
.get_depth_scale(), align(stream.color).process, frame.get_data / get_timestamp (ms) /
get_frame_timestamp_domain, video_stream_profile.get_intrinsics().

Frames are synthetic (a moving gradient + depth ramp) stamped in the global-time domain. `freeze()` makes the
device keep returning its last buffer, like a stalled USB camera. Registered as camera type `fake_realsense`
(robot_stack/cameras/factory.py imports this module by name).
"""

from __future__ import annotations

import threading
import time
import types
from collections import Counter

import numpy as np

from robot_stack.cameras.camera import CAMERAS
from robot_stack.cameras.realsense import RealSenseCamera, RealSenseConfig

stream = types.SimpleNamespace(color="color", depth="depth")
format = types.SimpleNamespace(rgb8="rgb8", z16="z16")  # noqa: A001 - mirrors the SDK's name
option = types.SimpleNamespace(enable_auto_exposure="enable_auto_exposure", exposure="exposure", gain="gain",
                               enable_auto_white_balance="enable_auto_white_balance", white_balance="white_balance")
camera_info = types.SimpleNamespace(name="name", serial_number="serial_number", firmware_version="firmware_version")
timestamp_domain = types.SimpleNamespace(global_time="global_time", system_time="system_time")


class FakeDevice:
    def __init__(self, serial: str):
        self.serial, self.options, self.frozen, self.calls = serial, {}, False, Counter()
        self.frame_number = 0

    def get_info(self, key):
        return {"name": "Intel RealSense D435 (fake)", "serial_number": self.serial, "firmware_version": "5.16.0.1"}[key]

    def first_color_sensor(self):
        dev = self

        class _S:
            def set_option(self, opt, value):
                dev.options[opt] = value
        return _S()

    def first_depth_sensor(self):
        return types.SimpleNamespace(get_depth_scale=lambda: 0.001)

    def freeze(self, frozen: bool = True) -> None:
        self.frozen = frozen


DEVICES: dict[str, FakeDevice] = {}
_LOCK = threading.Lock()


def add_device(serial: str) -> FakeDevice:
    with _LOCK:
        DEVICES[serial] = FakeDevice(serial)
        return DEVICES[serial]


class context:  # noqa: N801 - SDK names
    def query_devices(self):
        return list(DEVICES.values())


class config:  # noqa: N801
    def __init__(self):
        self.serial, self.streams = None, {}

    def enable_device(self, serial):
        self.serial = serial

    def enable_stream(self, s, width, height, fmt, fps):
        self.streams[s] = (width, height, fmt, fps)


class _Frame:
    def __init__(self, data, ts_ms):
        self._data, self._ts = data, ts_ms

    def __bool__(self):
        return True

    def get_data(self):
        return self._data

    def get_timestamp(self):
        return self._ts

    def get_frame_timestamp_domain(self):
        return timestamp_domain.global_time


class _Frameset:
    def __init__(self, color, depth):
        self._c, self._d = color, depth

    def get_color_frame(self):
        return self._c

    def get_depth_frame(self):
        return self._d


class pipeline:  # noqa: N801
    def start(self, cfg: config):
        self.dev = DEVICES[cfg.serial]
        self.dev.calls["start"] += 1
        self.cfg = cfg
        self.w, self.h, _, self.fps = cfg.streams["color"]
        self._last: _Frameset | None = None
        self._next = time.monotonic()
        intr = types.SimpleNamespace(width=self.w, height=self.h, fx=600.0, fy=600.0, ppx=self.w / 2, ppy=self.h / 2,
                                     coeffs=[0.0] * 5, model="distortion.inverse_brown_conrady")
        stream_profile = types.SimpleNamespace(as_video_stream_profile=lambda: types.SimpleNamespace(
            get_intrinsics=lambda: intr))
        return types.SimpleNamespace(get_device=lambda: self.dev, get_stream=lambda s: stream_profile)

    def try_wait_for_frames(self, timeout_ms: int):
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic())
        if self.dev.frozen and self._last is not None:
            return True, self._last  # a stalled device hands back its last buffer
        self.dev.frame_number += 1
        n = self.dev.frame_number
        img = np.zeros((self.h, self.w, 3), np.uint8)
        img[..., 0] = (np.arange(self.w)[None, :] + 3 * n) % 256
        img[..., 1] = n % 256
        depth = np.full((self.h, self.w), 500 + n, np.uint16) if "depth" in self.cfg.streams else None
        ts = time.time_ns() / 1e6 - 5.0  # exposure ~5 ms before delivery
        self._last = _Frameset(_Frame(img, ts), _Frame(depth, ts) if depth is not None else None)
        return True, self._last

    def stop(self):
        self.dev.calls["stop"] += 1


class align:  # noqa: N801
    def __init__(self, to):
        self.to = to

    def process(self, frames):
        return frames


def module() -> types.SimpleNamespace:
    return types.SimpleNamespace(stream=stream, format=format, option=option, camera_info=camera_info,
                                 timestamp_domain=timestamp_domain, context=context, config=config,
                                 pipeline=pipeline, align=align)


@CAMERAS.register("fake_realsense")
class FakeRealSenseCamera(RealSenseCamera):
    def __init__(self, name: str, config: RealSenseConfig):
        if config.serial not in DEVICES:
            add_device(config.serial)
        super().__init__(name, config, rs=module())
