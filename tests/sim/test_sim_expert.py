"""The scripted expert solves both tasks (zero and moderate noise) within the episode limit."""

import numpy as np
import pytest

from robot_stack.registry import UnknownNameError
from robot_stack.sim import ScriptedExpert, SimConfig, TabletopSim
from robot_stack.sim.expert import MAX_STEP_M, MAX_STEP_RAD

TASKS = ("put_cube_in_bowl", "take_cube_out_of_bowl")


def _rollout(sim, expert, max_steps):
    actions = []
    while not expert.done and len(actions) < max_steps:
        a = expert.act(sim)
        actions.append(a)
        sim.apply_ee_delta(a)
    return np.array(actions)


@pytest.fixture(scope="module")
def sims():
    made = {t: TabletopSim(SimConfig(task=t, image_size_px=64)) for t in TASKS}
    yield made
    for s in made.values():
        s.close()


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds_without_noise(sims, task):
    sim = sims[task]
    successes, lengths = 0, []
    for seed in range(10):
        sim.reset(seed=seed)
        expert = ScriptedExpert(task, seed=seed)
        actions = _rollout(sim, expert, sim.max_episode_steps)
        successes += sim.is_success()
        lengths.append(len(actions))
        assert expert.done
        assert np.all(np.linalg.norm(actions[:, :3], axis=1) <= MAX_STEP_M + 1e-6)
        assert np.all(np.linalg.norm(actions[:, 3:6], axis=1) <= MAX_STEP_RAD + 1e-6)
        assert set(np.unique(actions[:, 6])) <= {0.0, 1.0}
    assert successes >= 9
    assert 25 <= np.mean(lengths) <= 45


@pytest.mark.parametrize("task", TASKS)
def test_noisy_expert_mostly_succeeds(sims, task):
    sim = sims[task]
    successes = 0
    for seed in range(10):
        sim.reset(seed=100 + seed)
        expert = ScriptedExpert(task, noise_std=0.01, seed=seed)
        _rollout(sim, expert, sim.max_episode_steps)
        successes += sim.is_success()
    assert successes >= 7


def test_put_then_take_without_reset(sims):
    """Reset-free practice: the backward task starts from wherever the forward task left the scene."""
    sim = sims["put_cube_in_bowl"]
    sim.reset(seed=3)
    _rollout(sim, ScriptedExpert("put_cube_in_bowl"), sim.max_episode_steps)
    assert sim.is_success()
    sim.set_task("take_cube_out_of_bowl")
    assert not sim.is_success()
    _rollout(sim, ScriptedExpert("take_cube_out_of_bowl"), sim.max_episode_steps)
    assert sim.is_success()
    sim.set_task("put_cube_in_bowl")


def test_done_expert_holds_with_gripper_open(sims):
    sim = sims["put_cube_in_bowl"]
    sim.reset(seed=0)
    expert = ScriptedExpert("put_cube_in_bowl")
    _rollout(sim, expert, sim.max_episode_steps)
    assert expert.done and expert.phase == "done"
    np.testing.assert_array_equal(expert.act(sim), [0, 0, 0, 0, 0, 0, 1])
    expert.reset()
    assert not expert.done and expert.phase == "approach"


def test_noise_is_reproducible_per_seed(sims):
    sim = sims["put_cube_in_bowl"]
    runs = []
    for _ in range(2):
        sim.reset(seed=1)
        runs.append(_rollout(sim, ScriptedExpert("put_cube_in_bowl", noise_std=0.01, seed=5), 10))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_unknown_task_and_bad_noise_raise():
    with pytest.raises(UnknownNameError, match="take_cube_out_of_bowl"):
        ScriptedExpert("fold_laundry")
    with pytest.raises(ValueError, match="noise_std"):
        ScriptedExpert("put_cube_in_bowl", noise_std=-0.1)


# ------------------------------------------------------------------------------------------ every task, both arms
from robot_stack.sim.tasks import TASKS as TASK_REGISTRY  # noqa: E402

SEEDS_PER_TASK = 5  # zero noise is deterministic per seed; benchmarks/bench_sim.py runs 50 seeds per task


@pytest.fixture(scope="module", params=["widowx", "panda"])
def arm_sim(request):
    s = TabletopSim(SimConfig(arm=request.param, image_size_px=64, cameras=("front",)))
    yield s
    s.close()


def test_every_task_expert_succeeds_on_both_arms(arm_sim):
    failures = []
    for task in TASK_REGISTRY.names():
        arm_sim.set_task(task)
        for seed in range(SEEDS_PER_TASK):
            arm_sim.reset(seed=seed)
            expert = ScriptedExpert(task, seed=seed)
            _rollout(arm_sim, expert, arm_sim.max_episode_steps)
            if not arm_sim.is_success():
                failures.append((task, seed, expert.phase))
    assert not failures, f"{arm_sim.arm_spec.name}: expert failed {failures}"


def test_truncated_expert_fails_and_holds(arm_sim):
    arm_sim.set_task("put_cube_in_bowl")
    arm_sim.reset(seed=0)
    expert = ScriptedExpert("put_cube_in_bowl", truncate_after=12)
    actions = _rollout(arm_sim, expert, 60)
    assert len(actions) == 12 and expert.done and expert.truncated
    assert not arm_sim.is_success()
    with pytest.raises(ValueError, match="truncate_after"):
        ScriptedExpert("put_cube_in_bowl", truncate_after=-1)
