"""Thread control shared by every learner service (bc's LearnerService, the RLLearnerService): its own module so
that the service registry (learn/services.py) imports the services without the services importing it.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class BackgroundService:
    """What every learner service shares: thread control (`run()` blocks; `start()` runs it in a daemon thread
    so a ROS node's executor keeps spinning; `stop()` asks the loop to end after its current step), waiting for
    the store to exist, and announcing checkpoints. Subclasses set `store_path`, `cfg.poll_interval_s`,
    `announce` (callback or None) and `updates` (list)."""

    _thread_name = "learner"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None     # set when the thread died of an exception

    def run(self):  # pragma: no cover - every service implements its loop
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run_guarded, name=self._thread_name, daemon=True)
        self._thread.start()
        return self._thread

    def _run_guarded(self) -> None:
        # A learner thread that dies must not die silently (issue 11): the node reports `error` on
        # learner/status, and the last checkpoint stays the resume point.
        try:
            self.run()
        except Exception as e:  # noqa: BLE001 - whatever killed the thread is kept and reported
            self.error = f"{type(e).__name__}: {e}"
            log.exception("learner thread died: %s (fix the cause and restart the learner: it resumes from its "
                          "last checkpoint)", self.error)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _announce(self, update) -> None:
        self.updates.append(update)
        log.info("announcing policy %s v%d at %s", update.policy_type, update.version, update.path)
        if self.announce is not None:
            self.announce(update)

    def _open_store(self):
        """Open the store read-only, waiting for the recorder to create it; None if stopped first."""
        from robot_stack.store import StoreError, TrajectoryStore

        while True:
            try:
                return TrajectoryStore.open(self.store_path, mode="r")
            except StoreError as e:
                log.info("waiting for store %s (%s)", self.store_path, e)
            if self._stop.wait(self.cfg.poll_interval_s):
                return None
