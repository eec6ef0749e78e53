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
