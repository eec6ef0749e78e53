"""The `Camera` hardware role: one small ABC for RealSense, OpenCV and simulated cameras."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from robot_stack.registry import Registry


@dataclass(frozen=True)
class Frame:
    """image: uint8 (H, W, 3) RGB; capture_ns: when the pixels were captured (device or sim clock mapped to wall time)."""

    image: np.ndarray
    capture_ns: int


class Camera(abc.ABC):
    name: str
    height: int
    width: int

    @abc.abstractmethod
    def read(self) -> Frame:
        """The newest frame. Must not block the control loop for longer than one frame period."""

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the device (default: nothing to do)."""

    def disconnect(self) -> None:  # noqa: B027
        """Release the device."""


CAMERAS: Registry[type[Camera]] = Registry("camera driver")
