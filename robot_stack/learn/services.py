"""Learner service registry: `learner.algo` -> a builder of the service that trains it (no if-chains on names).

    cfg (composed hydra config) ─► SERVICES.get(cfg.learner.algo)(cfg, announce, on_progress) ─► service
                                   service.start() / stop() / join() / run()

`bc` builds the bc_conv LearnerService (robot_stack.learn.bc); `openvla` the OpenVLA LoRA learner
(robot_stack.policies.openvla.learner, recipe learner=openvla_lora); `parl` the PA-RL learner (robot_stack.algos.parl:
critic + base-policy distillation, recipes learner=parl_diffusion_state / parl_openvla); every other algorithm registered in
robot_stack.algos.base.ALGOS builds the RLLearnerService.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf

from robot_stack.registry import Registry

log = logging.getLogger(__name__)


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


@SERVICES.register("openvla")
def build_openvla_service(cfg: Any, announce: Callable | None, on_progress: Callable | None) -> Any:
    from robot_stack.policies.openvla.learner import OpenVLALearnerConfig, OpenVLALearnerService

    return OpenVLALearnerService(str(cfg.store), str(cfg.checkpoints), OpenVLALearnerConfig.from_dict(_learner_dict(cfg)),
                                 announce=announce, on_progress=on_progress)


@SERVICES.register("parl")
def build_parl_service(cfg: Any, announce: Callable | None, on_progress: Callable | None) -> Any:
    from robot_stack.algos.parl import PARLLearnerConfig, PARLLearnerService

    return PARLLearnerService(str(cfg.store), str(cfg.checkpoints), PARLLearnerConfig.from_dict(_learner_dict(cfg)),
                              announce=announce, on_progress=on_progress)


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
