"""Hydra configs (rig, task, policy, learner, profile) and the one function every process uses to compose them."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig


class ConfigError(ValueError):
    """A config name or override that does not exist; the message says what does."""


def load_config(overrides: Sequence[str] = (), config_name: str = "robot_stack") -> DictConfig:
    """Compose `robot_stack/conf/<config_name>.yaml` with hydra overrides (`task=...`, `demo.episodes=3`).

    Uses hydra's compose API rather than `@hydra.main` so processes keep their working directory and
    do not write hydra output folders.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module="robot_stack.conf", version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        detail = str(e).split("\nConfig search path")[0]  # hydra appends its search path; operators don't need it
        raise ConfigError(f"bad configuration {list(overrides)}: {detail}\n"
                          "Fix the override (group names: rig, task, policy, learner) and try again.") from None
    return cfg
