"""QoS profiles and DDS settings shared by every node."""

from __future__ import annotations

import os
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

FASTDDS_PROFILES = Path(__file__).with_name("fastdds_profiles.xml")

# Camera streams and proprioception: newest sample wins, a late one is useless.
SENSOR = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# Commands: every one should arrive (the arm node decides what is stale).
COMMAND = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# State that a late joiner must still see: e-stop, policy_update, policy_active.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)
# The recorder must not lose what it is recording when it falls behind for a moment (a slow disk flush, a
# loaded CPU): deep queues on its side. With KEEP_LAST(5) a backlog silently overwrote executed actions.
RECORD_SENSOR = QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
RECORD_COMMAND = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
STATUS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def configure_dds_environment() -> None:
    """Set DDS defaults before rclpy.init(); explicit environment settings win.

    Fast DDS's default UDP transport fragments 2 x 256x256 RGB at 10 Hz badly (measured here: ~2 Hz
    with best-effort defaults); its LARGE_DATA builtin transport (TCP + shared memory) holds 30 Hz.
    """
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    # A service reply must survive the discovery race right after bring-up: see the comment in the file.
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILES))
