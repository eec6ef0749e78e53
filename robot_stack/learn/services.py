"""Learner service registry: `learner.algo` -> a builder of the service that trains it (no if-chains on names).

    cfg (composed hydra config) ─► SERVICES.get(cfg.learner.algo)(cfg, announce, on_progress) ─► service
                                   service.start() / stop() / join() / run()

`bc` builds the bc_conv LearnerService (robot_stack.learn.bc); every algorithm registered in
robot_stack.algos.base.ALGOS builds the RLLearnerService.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf

from robot_stack.registry import Registry

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

    def run(self):  # pragma: no cover - every service implements its loop
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=self._thread_name, daemon=True)
        self._thread.start()
        return self._thread

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


ServiceBuilder = Callable[[Any, Callable | None, Callable | None], Any]
SERVICES: Registry[ServiceBuilder] = Registry("learner service")


def _learner_dict(cfg: Any) -> dict[str, Any]:
    learner = OmegaConf.to_container(cfg.learner, resolve=True)
    learner.pop("torch_threads", None)
    return learner


@SERVICES.register("bc")
def build_bc_service(cfg: Any, announce: Callable | None, on_progress: Callable | None) -> Any:
    from robot_stack.learn.bc import LearnerConfig, LearnerService

    learner = _learner_dict(cfg)
    learner.setdefault("task", str(cfg.task.language))
    policy_cfg = OmegaConf.to_container(cfg.policy.config, resolve=True)
    return LearnerService(str(cfg.store), str(cfg.checkpoints), LearnerConfig.from_dict(learner),
                          policy_type=str(cfg.policy.type), policy_config=policy_cfg, announce=announce,
                          on_progress=on_progress)


def build_rl_service(cfg: Any, announce: Callable | None, on_progress: Callable | None) -> Any:
    from robot_stack.learn.rl_service import RLLearnerConfig, RLLearnerService

    return RLLearnerService(str(cfg.store), str(cfg.checkpoints), RLLearnerConfig.from_dict(_learner_dict(cfg)),
                            announce=announce, on_progress=on_progress)


def service_builder(algo: str) -> ServiceBuilder:
    """The builder for `algo`; RL algorithms are registered from the algorithm registry on first lookup."""
    from robot_stack.algos.base import ALGOS, load_builtin_algos

    load_builtin_algos()
    for name in ALGOS.names():
        if name not in SERVICES:
            SERVICES.register(name)(build_rl_service)
    return SERVICES.get(algo)


def build_service(cfg: Any, announce: Callable | None = None, on_progress: Callable | None = None) -> Any:
    return service_builder(str(cfg.learner.algo))(cfg, announce, on_progress)
