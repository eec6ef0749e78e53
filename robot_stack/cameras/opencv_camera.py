"""OpenCV / V4L2 camera (USB webcams, or a video file for tests): MJPG, resolution and fps set and verified.

Frames come from a FrameGrabber thread; `read()` returns the newest one within one frame period.
Capture time is the time `VideoCapture.read()` returned (V4L2 buffer timestamps are not exposed by
OpenCV's Python API); it lags the exposure by up to one frame period plus USB transfer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from robot_stack.cameras.camera import CAMERAS, Frame
from robot_stack.cameras.grabber import FrameGrabber, GrabbedCamera

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenCVCameraConfig:
    """`device`: /dev/v4l/by-id/... path (stable across reboots, from calibration/<rig>/<camera>.yaml),
    a /dev/videoN index, or a video file."""

    device: str | int
    height: int
    width: int
    fps_hz: float
    fourcc: str = "MJPG"  # uncompressed YUYV cannot carry 640x480@30 for two cameras on one USB 2 hub
    stall_timeout_s: float = 2.0
    loop_file: bool = True  # video files: start over at the end (tests, replays)

    @classmethod
    def from_mapping(cls, m) -> OpenCVCameraConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in m.items() if k in known})


@CAMERAS.register("opencv")
class OpenCVCamera(GrabbedCamera):
    def __init__(self, name: str, config: OpenCVCameraConfig):
        self.name, self.config = name, config
        self.height, self.width = config.height, config.width
        self._cap = None
        self._is_file = isinstance(config.device, str) and not config.device.startswith("/dev/")
        self._period_s = 1.0 / config.fps_hz
        self._next_s = 0.0
        self._last_read_ns = 0
        self.grabber = FrameGrabber(name, self._grab, self._reopen, stall_timeout_s=config.stall_timeout_s)

    def connect(self) -> None:
        self._open()
        self.grabber.start()

    def _open(self) -> None:
        import cv2

        c = self.config
        dev = int(c.device) if isinstance(c.device, int) or str(c.device).isdigit() else str(c.device)
        cap = cv2.VideoCapture(dev) if self._is_file else cv2.VideoCapture(dev, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise RuntimeError(f"camera {self.name}: cannot open {c.device!r}; check `robot-stack cameras list` and "
                               "the device in calibration/<rig>/<camera>.yaml")
        if not self._is_file:
            # Order matters on V4L2: FOURCC first, then size, then fps (the driver re-negotiates on each set).
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            cap.set(cv2.CAP_PROP_FPS, c.fps_hz)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (h, w) != (c.height, c.width):
            cap.release()
            raise RuntimeError(f"camera {self.name}: {c.device!r} delivers {w}x{h}, config asks for "
                               f"{c.width}x{c.height}; pick a mode from `v4l2-ctl --list-formats-ext -d {c.device}`")
        self._cap = cap

    def _reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._open()

    def _grab(self) -> Frame | None:
        import cv2

        if self._is_file:  # pace a file at the configured rate, like a live camera
            now = time.monotonic()
            if now < self._next_s:
                time.sleep(self._next_s - now)
            self._next_s = max(self._next_s + self._period_s, time.monotonic())
        ok, bgr = self._cap.read()
        if not ok:
            if self._is_file and self.config.loop_file:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return None
        return Frame(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), time.time_ns())

    def disconnect(self) -> None:
        self.grabber.stop()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
