"""Intel RealSense (D4xx) via pyrealsense2: device by serial, colour + depth aligned to colour, fixed
exposure / white balance, device timestamps, frozen-stream restart.

    pipeline.try_wait_for_frames ──► align(depth→colour) ──► RealSenseFrame(rgb, depth_mm, capture_ns)
          (grabber thread)                                      └─► FrameGrabber latest slot

Why fixed exposure and white balance: auto exposure changes brightness with the arm's position in view,
which a policy then learns as a feature (diffusion_policy and LeRobot pin both). Capture time: with
global time enabled (the default here) librealsense maps the device clock to host time, so
`get_timestamp()` (ms) is comparable with the arm's wall-clock stamps.
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
class RealSenseFrame(Frame):
    """Frame + depth_mm: uint16 (H, W) aligned to the colour image, 0 = no depth."""

    depth_mm: np.ndarray | None = None


@dataclass(frozen=True)
class RealSenseConfig:
    serial: str  # site value: calibration/<rig>/<camera>.yaml
    height: int
    width: int
    fps_hz: float
    enable_depth: bool = False
    exposure_us: float | None = None  # None: auto exposure (not recommended for learning)
    gain: float | None = None
    white_balance_k: float | None = None
    stall_timeout_s: float = 2.0
    frame_timeout_ms: int = 200

    @classmethod
    def from_mapping(cls, m) -> RealSenseConfig:
        if not m.get("serial"):
            raise ValueError("a RealSense camera needs its serial number: set `serial` in "
                             "calibration/<rig>/<camera>.yaml (`robot-stack cameras list` prints it)")
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in m.items() if k in known}
        kw["serial"] = str(kw["serial"])
        return cls(**kw)


def import_pyrealsense2():
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        raise ImportError("RealSense cameras need pyrealsense2 (`pip install robot_stack[realsense]`; on Debian "
                          "also `apt install libusb-1.0-0`), or use type: fake_realsense") from e
    return rs


def list_devices(rs) -> list[dict]:
    """Connected RealSense devices: name, serial, firmware."""
    out = []
    for dev in rs.context().query_devices():
        out.append({"name": dev.get_info(rs.camera_info.name), "serial": dev.get_info(rs.camera_info.serial_number),
                    "firmware": dev.get_info(rs.camera_info.firmware_version)})
    return out


@CAMERAS.register("realsense")
class RealSenseCamera(GrabbedCamera):
    def __init__(self, name: str, config: RealSenseConfig, rs=None):
        self.name, self.config = name, config
        self.height, self.width = config.height, config.width
        self._rs = rs
        self._pipeline = self._align = None
        self._depth_scale_m = 0.001
        self.intrinsics: dict | None = None
        self._last_read_ns = 0
        self._warned_domain = False
        self.grabber = FrameGrabber(name, self._grab, self._restart, stall_timeout_s=config.stall_timeout_s)

    def connect(self) -> None:
        self._rs = self._rs or import_pyrealsense2()
        self._start()
        self.grabber.start()

    def _start(self) -> None:
        rs, c = self._rs, self.config
        serials = [d["serial"] for d in list_devices(rs)]
        if c.serial not in serials:
            raise RuntimeError(f"camera {self.name}: no RealSense with serial {c.serial} (connected: {serials or 'none'});"
                               " check the USB 3 cable and calibration/<rig>/<camera>.yaml")
        cfg = rs.config()
        cfg.enable_device(c.serial)
        cfg.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, int(c.fps_hz))
        if c.enable_depth:
            cfg.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, int(c.fps_hz))
        self._pipeline = rs.pipeline()
        profile = self._pipeline.start(cfg)
        dev = profile.get_device()
        color = dev.first_color_sensor()
        if c.exposure_us is not None:
            color.set_option(rs.option.enable_auto_exposure, 0)
            color.set_option(rs.option.exposure, float(c.exposure_us))
        if c.gain is not None:
            color.set_option(rs.option.gain, float(c.gain))
        if c.white_balance_k is not None:
            color.set_option(rs.option.enable_auto_white_balance, 0)
            color.set_option(rs.option.white_balance, float(c.white_balance_k))
        if c.enable_depth:
            self._depth_scale_m = float(dev.first_depth_sensor().get_depth_scale())
            self._align = rs.align(rs.stream.color)
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self.intrinsics = {"width": intr.width, "height": intr.height, "fx": intr.fx, "fy": intr.fy,
                           "cx": intr.ppx, "cy": intr.ppy, "dist_coeffs": list(intr.coeffs), "model": str(intr.model)}

    def _restart(self) -> None:
        try:
            if self._pipeline is not None:
                self._pipeline.stop()
        except RuntimeError:
            pass  # a wedged pipeline may refuse to stop; starting a new one is what matters
        self._start()

    def _grab(self) -> Frame | None:
        ok, frames = self._pipeline.try_wait_for_frames(self.config.frame_timeout_ms)
        if not ok:
            return None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        image = np.asanyarray(color.get_data()).copy()
        depth = None
        if self.config.enable_depth:
            d = frames.get_depth_frame()
            if d:
                raw = np.asanyarray(d.get_data()).astype(np.float64)
                depth = np.clip(np.rint(raw * self._depth_scale_m * 1000.0), 0, 65535).astype(np.uint16)
        return RealSenseFrame(image, self._capture_ns(color), depth)

    def _capture_ns(self, frame) -> int:
        rs = self._rs
        if frame.get_frame_timestamp_domain() == rs.timestamp_domain.global_time:
            return int(frame.get_timestamp() * 1e6)
        if not self._warned_domain:
            log.warning("camera %s: timestamps are in the %s domain, not global time; using receive time "
                        "(update the firmware / enable global_time_enabled)", self.name,
                        frame.get_frame_timestamp_domain())
            self._warned_domain = True
        return time.time_ns()

    def disconnect(self) -> None:
        self.grabber.stop()
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
