"""observation.environment_state: privileged object state from the sim (layout, symmetry) and in generated stores."""

import mujoco
import numpy as np
import pytest

from robot_stack.sim import SimConfig, TabletopSim
from robot_stack.sim.env import ENV_STATE_DIM
from robot_stack.types import ENV_STATE_KEY, IMAGE_PREFIX, STATE_KEY, FeatureSpec


@pytest.fixture(scope="module")
def bare_sim():
    s = TabletopSim(SimConfig(cameras=()))
    yield s
    s.close()


def _set_cube_rotation(sim, quat_wxyz: np.ndarray, body_frame: bool = False) -> None:
    """Rotate the cube in place about its centre: about a world axis, or about one of its own axes."""
    adr = sim.model.jnt_qposadr[sim.model.joint("cube").id]
    q = sim.data.qpos[adr + 3:adr + 7].copy()
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, *((q, quat_wxyz) if body_frame else (quat_wxyz, q)))
    sim.data.qpos[adr + 3:adr + 7] = out
    mujoco.mj_forward(sim.model, sim.data)


def _axis_quat_wxyz(axis: str, angle_rad: float) -> np.ndarray:
    v = {"x": [1, 0, 0], "z": [0, 0, 1]}[axis]
    return np.array([np.cos(angle_rad / 2), *(np.sin(angle_rad / 2) * np.asarray(v))])


def test_environment_state_layout_matches_object_and_ee_poses(bare_sim):
    sim = bare_sim
    sim.reset(seed=7)
    env = sim.environment_state()
    assert ENV_STATE_DIM == 16 and env.shape == (16,) and env.dtype == np.float32
    poses, ee = sim.object_poses(), sim.ee_pose()[:3]
    for name, o in (("cube", 0), ("block", 5)):
        np.testing.assert_allclose(env[o:o + 3], poses[name][:3] - ee, atol=1e-6)
        x, y, z, w = poses[name][3:]  # xyzw; the reset places each graspable with a pure yaw
        assert abs(x) < 1e-3 and abs(y) < 1e-3
        yaw = 2.0 * np.arctan2(z, w)
        np.testing.assert_allclose(env[o + 3:o + 5], [np.sin(4 * yaw), np.cos(4 * yaw)], atol=1e-3)
    for name, o in (("bowl", 10), ("pot", 12), ("plate", 14)):
        np.testing.assert_allclose(env[o:o + 2], poses[name][:2] - ee[:2], atol=1e-6)
    # moving the arm changes the relative positions by the ee motion (objects stay put)
    sim.apply_ee_delta(np.array([0.03, -0.02, 0.0, 0.0, 0.0, 0.0, 1.0]))
    after, ee2 = sim.environment_state(), sim.ee_pose()[:3]
    np.testing.assert_allclose(after[10:12], sim.object_poses()["bowl"][:2] - ee2[:2], atol=1e-6)
    np.testing.assert_allclose(after[10:12] - env[10:12], -(ee2 - ee)[:2], atol=1e-6)
    assert np.linalg.norm((ee2 - ee)[:2]) > 0.02


def test_cube_yaw_features_respect_the_cube_symmetry(bare_sim):
    sim = bare_sim
    sim.reset(seed=3)
    env0 = sim.environment_state()
    _set_cube_rotation(sim, _axis_quat_wxyz("z", np.pi / 2))  # a quarter turn: the same cube
    np.testing.assert_allclose(sim.environment_state(), env0, atol=1e-5)
    _set_cube_rotation(sim, _axis_quat_wxyz("x", np.pi / 2), body_frame=True)  # onto another face: the same
    np.testing.assert_allclose(sim.environment_state(), env0, atol=1e-5)
    _set_cube_rotation(sim, _axis_quat_wxyz("z", np.pi / 4))  # an eighth turn: 4 yaw moves by pi
    env45 = sim.environment_state()
    np.testing.assert_allclose(env45[3:5], -env0[3:5], atol=1e-5)
    np.testing.assert_allclose(np.delete(env45, [3, 4]), np.delete(env0, [3, 4]), atol=1e-6)
    sim.reset(seed=3)


def test_environment_state_is_the_same_on_both_arms():
    # relative to the ee, so the arm's kitchen origin cancels; both home the ee at the same kitchen point
    arms = {}
    for arm in ("widowx", "panda"):
        s = TabletopSim(SimConfig(arm=arm, cameras=()))
        s.reset(seed=11)
        arms[arm] = s.environment_state()
        s.close()
    np.testing.assert_allclose(arms["widowx"], arms["panda"], atol=2e-3)


def test_generate_state_only_with_environment_state_round_trips(tmp_path):
    from robot_stack.sim.generate import generate, plan_jobs, run_job, store_schema
    from robot_stack.store import TrajectoryStore
    from robot_stack.store.sampler import TrajectorySampler

    tasks = ["put_cube_in_bowl", "push_cube_left"]
    path = tmp_path / "state_only.zarr"
    report = generate(path, arm="widowx", tasks=tasks, episodes=3, noise_std_m=0.0, failure_share=0.0, workers=1,
                      cameras=(), environment_state=True, seed=5, progress=False)
    assert report.episodes == 3
    store = TrajectoryStore.open(str(path), mode="r")
    schema = store.schema
    assert schema.cameras == () and not any(k.startswith(IMAGE_PREFIX) for k in schema.features)
    assert schema.features[ENV_STATE_KEY] == FeatureSpec("float32", (ENV_STATE_DIM,))
    assert not schema.differences(store_schema("widowx", 128, (), environment_state=True))
    assert ENV_STATE_KEY not in store_schema("widowx", 128, ()).features

    sim = TabletopSim(SimConfig(arm="widowx", cameras=()))
    for i, job in enumerate(plan_jobs(tasks, 3, 0.0, 0.0, seed=5)):
        ep = store.get_episode(i)
        n = len(ep["action"])
        assert ep[ENV_STATE_KEY].shape == (n, ENV_STATE_DIM) and ep[ENV_STATE_KEY].dtype == np.float32
        sim.set_task(job.task)
        sim.reset(seed=job.seed)
        np.testing.assert_array_equal(ep[ENV_STATE_KEY][0], sim.environment_state())  # before the first action
        cols, _ = run_job(sim, job, (), environment_state=True)  # the same episode again: identical rows
        np.testing.assert_array_equal(ep[ENV_STATE_KEY], cols[ENV_STATE_KEY])
        # read at the state's instant: bowl (fixed) = relative xy + ee xy of observation.state, every step
        bowl_xy = ep[ENV_STATE_KEY][:, 10:12] + ep[STATE_KEY][:, 6:8]
        np.testing.assert_allclose(bowl_xy, np.broadcast_to(bowl_xy[0], bowl_xy.shape), atol=1e-6)
    sim.close()

    assert store.stats(ENV_STATE_KEY)["mean"].shape == (ENV_STATE_DIM,)
    batch = TrajectorySampler(store, obs_keys=(STATE_KEY, ENV_STATE_KEY), n_obs_steps=2).sample(4)
    assert batch["obs"][ENV_STATE_KEY].shape == (4, 2, ENV_STATE_DIM)
    store.close()


def test_generate_state_only_on_the_panda_and_from_the_cli(tmp_path):
    from robot_stack.cli.main import main
    from robot_stack.sim.generate import generate
    from robot_stack.store import TrajectoryStore

    generate(tmp_path / "panda.zarr", arm="panda", tasks=["put_cube_in_bowl"], episodes=2, noise_std_m=0.0,
             failure_share=0.0, workers=1, cameras=(), environment_state=True, progress=False)
    with TrajectoryStore.open(str(tmp_path / "panda.zarr"), mode="r") as store:
        ep = store.get_episode(1)
        assert ep[STATE_KEY].shape[1] == 15 and ep[ENV_STATE_KEY].shape == (len(ep["action"]), ENV_STATE_DIM)
        assert store.episode_meta(0).success

    cli_path = tmp_path / "cli.zarr"
    assert main(["sim", "generate", "--tasks", "put_cube_in_bowl", "--episodes", "1", "--workers", "1",
                 "--cameras", "none", "--environment-state", "--store", str(cli_path)]) == 0
    with TrajectoryStore.open(str(cli_path), mode="r") as store:
        assert store.schema.cameras == () and ENV_STATE_KEY in store.schema.features
