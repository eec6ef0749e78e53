"""Task registry, initial-state samplers and ground-truth success on constructed states."""

import numpy as np
import pytest

from robot_stack.registry import UnknownNameError
from robot_stack.sim import tasks
from robot_stack.sim.widowx_model import BOWL_INNER_RADIUS_M, BOWL_OUTER_RADIUS_M

BOWL_XY = np.array([0.32, 0.10])


def test_registry_knows_both_tasks_and_names_them_on_error():
    assert {"put_cube_in_bowl", "take_cube_out_of_bowl"} <= set(tasks.TASKS.names())
    assert tasks.get_task("put_cube_in_bowl").language == "put the cube in the bowl"
    assert tasks.get_task("take_cube_out_of_bowl").language == "take the cube out of the bowl"
    with pytest.raises(UnknownNameError, match="put_cube_in_bowl.*take_cube_out_of_bowl"):
        tasks.get_task("stack_blocks")


@pytest.mark.parametrize(
    ("cube_pos", "put_ok", "take_ok"),
    [
        ((0.32, 0.10, tasks.CUBE_IN_BOWL_Z_M), True, False),  # resting in the centre of the bowl
        ((0.32 + BOWL_INNER_RADIUS_M - 0.02, 0.10, tasks.CUBE_IN_BOWL_Z_M), True, False),  # near the wall
        ((0.32, 0.10, 0.10), False, False),  # held above the bowl
        ((0.32, -0.10, tasks.CUBE_ON_TABLE_Z_M), False, True),  # on the table, far from the bowl
        ((0.32, 0.10 - BOWL_OUTER_RADIUS_M - 0.005, tasks.CUBE_ON_TABLE_Z_M), False, False),  # against the wall
        ((0.32, -0.10, 0.10), False, False),  # held above the table
    ],
)
def test_success_on_constructed_states(cube_pos, put_ok, take_ok):
    cube = np.array(cube_pos)
    assert tasks.get_task("put_cube_in_bowl").is_success(cube, BOWL_XY) is put_ok
    assert tasks.get_task("take_cube_out_of_bowl").is_success(cube, BOWL_XY) is take_ok


@pytest.mark.parametrize("name", ["put_cube_in_bowl", "take_cube_out_of_bowl"])
def test_initial_states_are_not_already_solved_and_in_reach(name):
    task = tasks.get_task(name)
    rng = np.random.default_rng(0)
    for _ in range(200):
        layout = task.sample_layout(rng)
        assert not task.is_success(layout.cube_pos_m, layout.bowl_xy_m)
        for xy in (layout.cube_pos_m[:2], layout.bowl_xy_m):
            assert 0.25 <= xy[0] <= 0.40 and abs(xy[1]) <= 0.16
        radius = np.linalg.norm(layout.cube_pos_m[:2] - layout.bowl_xy_m)
        if name == "put_cube_in_bowl":
            assert radius > tasks.OUT_OF_BOWL_MIN_RADIUS_M
        else:
            assert radius < tasks.IN_BOWL_MAX_RADIUS_M
