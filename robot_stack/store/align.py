"""Assemble observations from multi-rate streams (state at control rate, cameras at their own fps).

Pure Python, no ROS: the recorder and the inference node both use it, so what the policy saw and what
the store records are built by the same rule:

    observation for state stamp s = state(s) + for each camera the first frame captured at or after s
                                    (the world after the last control step), within `max_skew_ms`;
                                    if a camera has no such frame, its newest frame before s within max_skew_ms.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from robot_stack.types import STATE_KEY, capture_ns_key, image_key, receive_ns_key


@dataclass
class _Stream:
    stamps: deque = field(default_factory=deque)  # capture ns, increasing
    items: deque = field(default_factory=deque)  # (value, receive_ns)


class ObservationAssembler:
    def __init__(self, cameras: tuple[str, ...], max_skew_ms: float, horizon_s: float = 3.0):
        self.cameras = tuple(cameras)
        self.max_skew_ns = int(max_skew_ms * 1e6)
        self.horizon_ns = int(horizon_s * 1e9)
        self._streams: dict[str, _Stream] = {name: _Stream() for name in ("state", *self.cameras)}

    def add_state(self, stamp_ns: int, state: np.ndarray, receive_ns: int) -> None:
        self._add("state", stamp_ns, np.asarray(state, dtype=np.float32), receive_ns)

    def add_image(self, camera: str, capture_ns: int, image: np.ndarray, receive_ns: int) -> None:
        if camera not in self._streams:
            raise KeyError(f"camera {camera!r} is not one of {self.cameras}")
        self._add(camera, capture_ns, image, receive_ns)

    def _add(self, name: str, stamp_ns: int, value, receive_ns: int) -> None:
        s = self._streams[name]
        if s.stamps and stamp_ns <= s.stamps[-1]:
            if stamp_ns == s.stamps[-1]:
                return  # duplicate delivery
            # out-of-order arrival: rare with KEEP_LAST QoS; insert in place to keep stamps sorted
            i = bisect.bisect_left(list(s.stamps), stamp_ns)
            s.stamps.insert(i, stamp_ns)
            s.items.insert(i, (value, receive_ns))
        else:
            s.stamps.append(stamp_ns)
            s.items.append((value, receive_ns))
        while s.stamps and s.stamps[-1] - s.stamps[0] > self.horizon_ns:
            s.stamps.popleft()
            s.items.popleft()

    def latest_state_stamp(self) -> int | None:
        s = self._streams["state"]
        return s.stamps[-1] if s.stamps else None

    def observation(self, state_stamp_ns: int) -> dict[str, np.ndarray] | None:
        """The flat observation frame for a state stamp, with timestamps; None if a stream is missing.

        Keys: observation.state, observation.images.<cam>, timestamps.<stream>.capture_ns / receive_ns.
        """
        st = self._streams["state"]
        stamps = list(st.stamps)
        i = bisect.bisect_left(stamps, state_stamp_ns)
        if i == len(stamps) or stamps[i] != state_stamp_ns:
            return None
        state, state_recv = st.items[i]
        frame: dict[str, np.ndarray] = {
            STATE_KEY: state,
            capture_ns_key("state"): np.int64(state_stamp_ns),
            receive_ns_key("state"): np.int64(state_recv),
        }
        for cam in self.cameras:
            picked = self._pick(self._streams[cam], state_stamp_ns)
            if picked is None:
                return None
            cap, (img, recv) = picked
            frame[image_key(cam)] = img
            frame[capture_ns_key(cam)] = np.int64(cap)
            frame[receive_ns_key(cam)] = np.int64(recv)
        return frame

    def _pick(self, s: _Stream, t_ns: int):
        stamps = list(s.stamps)
        j = bisect.bisect_left(stamps, t_ns)
        if j < len(stamps) and stamps[j] - t_ns <= self.max_skew_ns:
            return stamps[j], s.items[j]
        if j > 0 and t_ns - stamps[j - 1] <= self.max_skew_ns:
            return stamps[j - 1], s.items[j - 1]
        return None

    def camera_has_frame_after(self, t_ns: int) -> bool:
        """True when every camera has a frame captured at or after t (the policy can act on state t)."""
        return all(self._streams[c].stamps and self._streams[c].stamps[-1] >= t_ns for c in self.cameras)
