import pytest

from robot_stack.conf import ConfigError, load_config


def test_defaults_compose_and_overrides_apply():
    cfg = load_config(["demo.episodes=3", "task=take_cube_out_of_bowl"])
    assert cfg.demo.episodes == 3
    assert cfg.task.language == "take the cube out of the bowl"
    assert cfg.store.endswith("sim_widowx.zarr")
    assert set(cfg.rig.cameras) == {"front", "wrist"}


@pytest.mark.parametrize("override,needle", [
    ("task=fly_to_the_moon", "put_cube_in_bowl"),  # the error lists the tasks that exist
    ("rig=not_a_rig", "sim_widowx"),
    ("demo.no_such_key=1", "no_such_key"),
])
def test_bad_names_get_one_clear_message(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config([override])


def _learner_recipes():
    from pathlib import Path

    import robot_stack.conf as conf

    return sorted(p.stem for p in (Path(conf.__file__).parent / "learner").glob("*.yaml"))


@pytest.mark.parametrize("name", _learner_recipes())
def test_every_learner_recipe_composes_into_its_algorithm_config(name):
    """Each conf/learner/*.yaml composes, and its algo_config is accepted by that algorithm's config class (a
    misspelt key or an unknown algorithm fails here, not an hour into a run)."""
    from omegaconf import OmegaConf

    from robot_stack.algos.base import algo_class
    from robot_stack.learn.bc import LearnerConfig
    from robot_stack.learn.rl_service import RLLearnerConfig
    from robot_stack.learn.services import service_builder

    cfg = load_config([f"learner={name}"])
    d = {k: v for k, v in OmegaConf.to_container(cfg.learner, resolve=True).items() if k != "torch_threads"}
    service_builder(d["algo"])                                  # a registered learner service
    if d["algo"] == "bc":                                       # bc_conv trains through robot_stack.learn.bc
        LearnerConfig.from_dict(d)
        return
    if d["algo"] == "openvla":                                  # robot_stack/policies/openvla/learner.py
        from robot_stack.policies.openvla.learner import OpenVLALearnerConfig

        OpenVLALearnerConfig.from_dict(d)
        return
    if d["algo"] == "parl":                                     # robot_stack/algos/parl.py: + the base policy
        from robot_stack.algos.parl import ActionOptConfig, PARLConfig, PARLLearnerConfig

        with pytest.raises(ValueError, match="base_checkpoint"):  # shipped without a base: required at launch
            PARLLearnerConfig.from_dict(d)
        algo_config = PARLConfig.from_dict(PARLLearnerConfig.from_dict({**d, "base_checkpoint": "/b"}).algo_config)
        ActionOptConfig.from_dict(algo_config.action_opt)
        return
    rl = RLLearnerConfig.from_dict(d)
    algo_class(rl.algo).config_class.from_dict(rl.algo_config)
