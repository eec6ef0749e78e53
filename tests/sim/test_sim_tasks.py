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


# ------------------------------------------------------------------------------------------ the kitchen suite
from robot_stack.sim import kitchen  # noqa: E402

ALL = tasks.TASKS.names()


def test_suite_has_pairs_held_out_tasks_and_languages():
    assert len(ALL) >= 8
    pairs = {(t.name, t.reverse) for t in tasks.all_tasks() if t.reverse}
    assert len(pairs) >= 6  # >= 3 forward/backward pairs, each listed from both sides
    for fw, bw in pairs:
        assert tasks.get_task(bw).reverse == fw
        assert {tasks.get_task(fw).phase, tasks.get_task(bw).phase} == {"forward", "backward"}
    assert set(tasks.HELD_OUT_TASKS) <= set(ALL)
    assert not set(tasks.HELD_OUT_TASKS) & set(tasks.prior_tasks())
    assert all(tasks.get_task(n).held_out for n in tasks.HELD_OUT_TASKS)
    languages = [t.language for t in tasks.all_tasks()]
    assert len(set(languages)) == len(languages)  # an instruction names exactly one task
    assert tasks.get_task("put_block_in_pot").language == "put the green block in the pot"


@pytest.mark.parametrize("name", ALL)
def test_every_initial_state_is_unsolved_and_objects_do_not_overlap(name):
    task = tasks.get_task(name)
    rng = np.random.default_rng(1)
    for _ in range(100):
        layout = task.sample_layout(rng)
        assert set(layout.poses) == set(kitchen.OBJECT_NAMES)
        assert not task.is_success(layout.poses)
        nested = (task.obj, task.container) if task.relation == "out" else None
        assert tasks.layout_clearances_ok(layout, exempt=nested)


@pytest.mark.parametrize(("container", "floor_z"), [("pot", kitchen.POT_FLOOR_THICKNESS_M),
                                                    ("plate", kitchen.PLATE_THICKNESS_M)])
def test_in_and_out_success_on_constructed_states(container, floor_z):
    xy = np.array(kitchen.HOME_XY_M[container])
    put = next(t for t in tasks.all_tasks() if t.container == container and t.relation == "in" and not t.held_out)
    take = tasks.get_task(put.reverse)
    obj = put.obj
    resting_in = np.array([*xy, floor_z + tasks.CUBE_HALF_SIZE_M])
    assert put.is_success({obj: resting_in, container: xy}) and not take.is_success({obj: resting_in, container: xy})
    held_above = np.array([*xy, 0.12])
    assert not put.is_success({obj: held_above, container: xy})
    radius = kitchen.container_outer_radius_m(container)
    on_table_far = np.array([xy[0], xy[1] + radius + 0.05, tasks.CUBE_ON_TABLE_Z_M])
    assert take.is_success({obj: on_table_far, container: xy}) and not put.is_success({obj: on_table_far, container: xy})
    against_rim = np.array([xy[0], xy[1] + radius + 0.005, tasks.CUBE_ON_TABLE_Z_M])
    assert not take.is_success({obj: against_rim, container: xy})


@pytest.mark.parametrize(("y", "left_ok", "right_ok"), [(-0.17, False, True), (-0.10, False, False),
                                                        (-0.05, True, False)])
def test_push_success_lines(y, left_ok, right_ok):
    cube = np.array([tasks.PUSH_X_M, y, tasks.CUBE_ON_TABLE_Z_M])
    assert tasks.get_task("push_cube_left").is_success({"cube": cube}) is left_ok
    assert tasks.get_task("push_cube_right").is_success({"cube": cube}) is right_ok
    lifted = cube + np.array([0, 0, 0.05])
    assert not tasks.get_task("push_cube_left").is_success({"cube": lifted})
