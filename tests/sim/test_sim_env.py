"""TabletopSim public API: state, ee_delta IK control, rendering, resets and error messages."""

import numpy as np
import pytest

from robot_stack.registry import UnknownNameError
from robot_stack.sim import SimConfig, TabletopSim
from robot_stack.sim.rotations import quat_xyzw_to_mat, top_down_mat
from robot_stack.types import state_dim

OPEN = 1.0


def _action(dpos=(0, 0, 0), drot=(0, 0, 0), gripper=OPEN):
    return np.array([*dpos, *drot, gripper], dtype=np.float64)


def test_state_layout_and_home_pose(sim):
    sim.reset(seed=0)
    assert sim.joint_names == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
    state = sim.state()
    assert state.dtype == np.float32 and state.shape == (state_dim(6),) == (14,)
    np.testing.assert_allclose(state[:6], sim.joint_positions(), atol=1e-6)
    ee = sim.ee_pose()
    assert ee.shape == (7,) and np.linalg.norm(ee[3:]) == pytest.approx(1.0)
    np.testing.assert_allclose(ee[:3], [0.25, 0.0, 0.16], atol=2e-3)
    np.testing.assert_allclose(quat_xyzw_to_mat(ee[3:]), top_down_mat(0.0), atol=1e-2)  # pointing down
    assert sim.gripper_opening() == pytest.approx(1.0, abs=0.02)
    assert state[-1] == pytest.approx(sim.gripper_opening())


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ee_delta_moves_the_ee_by_the_commanded_amount(sim, axis, sign):
    sim.reset(seed=0)
    start = sim.ee_pose()
    dpos = np.zeros(3)
    dpos[axis] = 0.02 * sign
    executed = sim.apply_ee_delta(_action(dpos))
    assert executed.dtype == np.float32 and executed.shape == (7,)
    np.testing.assert_allclose(executed[:3], dpos, atol=1e-4)
    moved = sim.ee_pose()[:3] - start[:3]
    assert np.linalg.norm(moved - dpos) < 0.005, moved
    # orientation is held while translating
    np.testing.assert_allclose(quat_xyzw_to_mat(sim.ee_pose()[3:]), quat_xyzw_to_mat(start[3:]), atol=0.02)


def test_ee_delta_rotates_about_the_base_z_axis(sim):
    sim.reset(seed=0)
    for _ in range(3):
        sim.apply_ee_delta(_action(drot=(0, 0, 0.1)))
    np.testing.assert_allclose(quat_xyzw_to_mat(sim.ee_pose()[3:]), top_down_mat(0.3), atol=0.02)
    np.testing.assert_allclose(sim.ee_pose()[:3], [0.25, 0.0, 0.16], atol=3e-3)


def test_zero_action_holds_still_and_time_advances(sim):
    sim.reset(seed=0)
    start = sim.ee_pose()
    for _ in range(10):
        sim.apply_ee_delta(_action())
    np.testing.assert_allclose(sim.ee_pose(), start, atol=1e-3)
    assert sim.sim_time_s == pytest.approx(10 / sim.config.control_hz)


def test_workspace_box_clips_the_target_and_reports_it(sim):
    sim.reset(seed=0)
    total = np.zeros(3)
    for _ in range(12):
        total += sim.apply_ee_delta(_action(dpos=(0, 0, -0.03)))[:3]
    z_min = sim.config.workspace_min_m[2]
    assert total[2] == pytest.approx(z_min - 0.16, abs=1e-3)  # executed deltas stop at the floor of the box
    assert sim.ee_pose()[2] > z_min - 0.003


def test_gripper_command_closes_and_opens(sim):
    sim.reset(seed=0)
    sim.apply_ee_delta(_action(gripper=0.0))
    sim.apply_ee_delta(_action(gripper=0.0))
    assert sim.gripper_opening() < 0.05
    sim.apply_ee_delta(_action(gripper=2.0))  # clipped to fully open
    sim.apply_ee_delta(_action(gripper=1.0))
    assert sim.gripper_opening() > 0.95


@pytest.mark.parametrize("bad", [np.zeros(6), np.array([np.nan, 0, 0, 0, 0, 0, 1.0])])
def test_malformed_action_raises(sim, bad):
    with pytest.raises(ValueError, match="7 finite floats"):
        sim.apply_ee_delta(bad)


def test_render_shapes_and_content(sim):
    sim.reset(seed=0)
    for cam in ("front", "wrist"):
        img = sim.render(cam)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert img.std() > 10, f"{cam} image looks blank"
    assert sim.render("front", size_px=96).shape == (96, 96, 3)
    assert sim.camera_fov_y_deg("wrist") > sim.camera_fov_y_deg("front")


def test_the_cube_is_visible_in_the_front_camera(sim):
    sim.reset(seed=0)
    img = sim.render("front").astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() >= 3


def test_unknown_camera_names_the_known_ones(sim):
    with pytest.raises(ValueError, match="front, wrist"):
        sim.render("overhead")
    with pytest.raises(ValueError, match="front, wrist"):
        TabletopSim(SimConfig(cameras=("front", "overhead")))


def test_unknown_task_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="put_cube_in_bowl"):
        TabletopSim(SimConfig(task="fold_laundry"))


def test_reset_is_reproducible_per_seed(sim):
    sim.reset(seed=7)
    a = sim.object_poses()
    img_a = sim.render("front")
    sim.apply_ee_delta(_action(dpos=(0.02, 0, 0)))
    sim.reset(seed=7)
    b = sim.object_poses()
    for name in ("cube", "bowl"):
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(img_a, sim.render("front"))
    assert sim.sim_time_s == 0.0
    sim.reset(seed=8)
    assert np.linalg.norm(sim.object_poses()["cube"][:3] - a["cube"][:3]) > 1e-4


def test_task_language_and_switching(sim):
    sim.reset(seed=0)
    assert sim.task == "put_cube_in_bowl" and sim.language == "put the cube in the bowl"
    assert not sim.is_success()
    sim.set_task("take_cube_out_of_bowl")  # reset-free practice: same scene, other instruction
    assert sim.language == "take the cube out of the bowl"
    assert sim.is_success()  # the cube starts on the table, i.e. already out of the bowl
    sim.set_task("put_cube_in_bowl")


def test_contact_is_seen_at_every_substep_of_a_control_step():
    """`arm_contacted_in_last_step` covers the whole step (a touch inside one step can fling the arm, and the
    safety meter must report that step as contact): free air gives False; pressed into the table, a step
    ends in contact only if it saw contact; a reset clears it."""
    s = TabletopSim(SimConfig(image_size_px=32, cameras=("front",), workspace_min_m=(0.1, -0.3, -0.05)))
    try:
        s.reset(seed=0)
        s.apply_ee_delta(_action(dpos=(0, 0, 0.01)))
        assert not s.arm_contacted_in_last_step() and not s.arm_in_contact()
        seen = []
        for _ in range(20):
            s.apply_ee_delta(_action(dpos=(0, 0, -0.03)))
            seen.append((s.arm_contacted_in_last_step(), s.arm_in_contact()))
            assert s.arm_contacted_in_last_step() or not s.arm_in_contact()
        assert any(during for during, _ in seen), "the gripper never touched the table"
        s.reset(seed=0)
        assert not s.arm_contacted_in_last_step()
    finally:
        s.close()
