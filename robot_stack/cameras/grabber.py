"""FrameGrabber: one background thread per camera, so the control loop never waits on a device.

    device thread: grab() ──► (Frame) ──► latest slot (lock) ──► read_latest(max_age_ms)  (never blocks)
                      │ no new frame for stall_timeout_s, or the same pixels `max_repeats` times
                      ▼
                   restart() (close + reopen the device), counted in `restarts`

Frozen-stream detection follows bridge_data_robot (hash repeats: a USB camera that stalls often keeps
returning its last buffer) and LeRobot's `read_latest(max_age_ms)`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from robot_stack.cameras.camera import Camera, Frame

log = logging.getLogger(__name__)


class StaleFrameError(RuntimeError):
    """No frame newer than max_age_ms; the message names the camera and how old the last one is."""


class FrameGrabber:
    def __init__(self, name: str, grab: Callable[[], Frame | None], restart: Callable[[], None],
                 stall_timeout_s: float = 2.0, max_repeats: int = 30):
        self.name, self._grab, self._restart = name, grab, restart
        self.stall_timeout_s, self.max_repeats = stall_timeout_s, max_repeats
        self._lock = threading.Condition()
        self._latest: Frame | None = None
        self._latest_receive_ns = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.n_frames = 0
        self.restarts = 0
        self.last_error = ""
        self._last_digest = b""
        self._repeats = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"grab-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        last_new = time.monotonic()
        while not self._stop.is_set():
            try:
                frame = self._grab()
            except Exception as e:  # a device error is a stall, not a crash of the camera node
                self.last_error = str(e)
                frame = None
                time.sleep(0.01)
            now = time.monotonic()
            if frame is not None and self._is_new(frame):
                with self._lock:
                    self._latest, self._latest_receive_ns = frame, time.time_ns()
                    self.n_frames += 1
                    self._lock.notify_all()
                last_new = now
            elif now - last_new > self.stall_timeout_s or self._repeats >= self.max_repeats:
                why = f"identical frames x{self._repeats}" if self._repeats >= self.max_repeats else \
                    f"no new frame for {now - last_new:.1f} s"
                log.warning("camera %s frozen (%s%s); restarting it", self.name, why,
                            f", last error: {self.last_error}" if self.last_error else "")
                self.restarts += 1
                self._repeats, self._last_digest = 0, b""
                try:
                    self._restart()
                except Exception as e:
                    self.last_error = f"restart failed: {e}"
                    log.error("camera %s restart failed: %s (retrying)", self.name, e)
                    self._stop.wait(1.0)
                last_new = time.monotonic()

    def _is_new(self, frame: Frame) -> bool:
        # Hash a strided subsample: cheap, and sensor noise changes it on any live camera.
        digest = hashlib.blake2b(frame.image[::7, ::7].tobytes(), digest_size=16).digest()
        if digest == self._last_digest:
            self._repeats += 1
            return False
        self._last_digest, self._repeats = digest, 0
        return True

    def read_latest(self, max_age_ms: float) -> Frame:
        """The newest frame if it was captured within max_age_ms; StaleFrameError otherwise. Never blocks."""
        with self._lock:
            frame = self._latest
        if frame is None:
            raise StaleFrameError(f"camera {self.name}: no frame yet{self._hint()}")
        age_ms = (time.time_ns() - frame.capture_ns) / 1e6
        if age_ms > max_age_ms:
            raise StaleFrameError(f"camera {self.name}: newest frame is {age_ms:.0f} ms old (max {max_age_ms:.0f})"
                                  f"{self._hint()}")
        return frame

    def wait_newer(self, than_ns: int, timeout_s: float) -> Frame | None:
        """Block until a frame captured after `than_ns` arrives (at most timeout_s); the newest frame or None."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while (self._latest is None or self._latest.capture_ns <= than_ns) and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._latest

    def _hint(self) -> str:
        return f" (restarts: {self.restarts}; last error: {self.last_error or 'none'})"


class GrabbedCamera(Camera):
    """A camera whose frames come from a background FrameGrabber (`self.grabber`), so reads never block the
    control loop for longer than one frame period. Subclasses set `grabber`, `config` (with fps_hz and
    stall_timeout_s) and `_last_read_ns = 0`."""

    grabber: FrameGrabber

    def read(self) -> Frame:
        """The next frame newer than the last one read (waits at most one period; the first read waits for
        the stream to start, up to stall_timeout_s)."""
        timeout_s = 1.0 / self.config.fps_hz if self._last_read_ns else self.config.stall_timeout_s
        frame = self.grabber.wait_newer(self._last_read_ns, timeout_s=timeout_s)
        if frame is None:
            raise RuntimeError(f"camera {self.name}: no frame yet (last error: {self.grabber.last_error or 'none'})")
        self._last_read_ns = frame.capture_ns
        return frame

    def read_latest(self, max_age_ms: float) -> Frame:
        return self.grabber.read_latest(max_age_ms)
