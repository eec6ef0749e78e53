"""Polling with a deadline, for tests that watch a live graph (ROS nodes, supervisor, browser)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(pred: Callable[[], Any], timeout_s: float, what: str, check: Callable[[], None] | None = None,
               poll_s: float = 0.05) -> Any:
    """pred()'s first truthy value; AssertionError naming `what` after timeout_s. `check()` runs before each poll
    (e.g. Supervisor.check, which raises naming a node that died) so a crash is reported as itself, not as a
    timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check is not None:
            check()
        value = pred()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
