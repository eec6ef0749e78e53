"""The in-process sim evaluation loop: the scripted expert succeeds, a zero-action actor does not, a policy loads
from a checkpoint dir and acts, recorded rollouts have store-ready columns."""

import numpy as np
import pytest
import torch

import robot_stack.sim  # noqa: E402,F401  (sets MUJOCO_GL=egl before mujoco is first imported)

pytest.importorskip("mujoco")

from robot_stack.learn.evaluate import ExpertActor, PolicyActor, evaluate, rollout  # noqa: E402
from robot_stack.policies.base import make_policy  # noqa: E402
from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint  # noqa: E402
from robot_stack.policies.normalizer import Normalizer  # noqa: E402
from robot_stack.sim.env import SimConfig, TabletopSim  # noqa: E402
from robot_stack.types import ACTION_KEY, STATE_KEY, image_key, rig_features  # noqa: E402

TASK = "put_cube_in_bowl"
LANG = "put the cube in the bowl"
TINY = {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16, "image_size_px": 32, "cameras": ["front"],
        "actor_hidden_dims": [16], "critic_hidden_dims": [16], "tasks": ["other task", LANG]}


class ZeroActor:
    def reset(self, task, seed, language=""):
        pass

    def act(self, obs, sim):
        assert obs[image_key("front")].shape == (32, 32, 3) and obs[STATE_KEY].shape == (14,)
        return np.zeros(7, np.float32)


@pytest.fixture(scope="module")
def sim():
    s = TabletopSim(SimConfig(image_size_px=32, cameras=("front",), task=TASK))
    yield s
    s.close()


def _tiny_policy():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    acts = rng.normal(0, 0.01, (100, 7))
    acts[:, 6] = rng.integers(0, 2, 100)
    return make_policy("actor_critic", dict(TINY), Normalizer.fit(acts, rng.normal(size=(100, 14))))


def test_expert_succeeds_zero_action_does_not(sim):
    expert = evaluate(ExpertActor(), TASK, episodes=3, sim=sim)
    zero = evaluate(ZeroActor(), TASK, episodes=3, sim=sim, max_steps=15)
    assert expert.successes >= 2 and expert.success_rate >= 2 / 3
    assert all(e.steps < sim.max_episode_steps for e in expert.episodes if e.success)   # stops on success
    assert zero.successes == 0 and all(e.steps == 15 for e in zero.episodes)
    assert zero.mean_goal_distance_m > expert.mean_goal_distance_m
    assert expert.summary()["episodes"] == 3


def test_checkpoint_policy_is_conditioned_and_records(sim, tmp_path):
    policy = _tiny_policy()
    schema = PolicySchema.from_features(rig_features({"front": (32, 32)}, n_joints=6)).restrict(
        policy.observation_keys())
    path = save_checkpoint(policy, policy.normalizer, schema, tmp_path / "ckpt", 1, 0)
    res = evaluate(tmp_path / "ckpt", TASK, episodes=1, sim=sim, max_steps=4)
    assert res.n == 1 and res.episodes[0].steps == 4 and not res.episodes[0].success
    assert path.exists()
    actor = PolicyActor(policy, stochastic=True)
    result, cols = rollout(sim, actor, TASK, seed=5, max_steps=3, record=True)
    assert policy.config.deploy_task == LANG
    assert cols[image_key("front")].shape == (3, 32, 32, 3) and cols[ACTION_KEY].shape == (3, 7)
    assert len({len(v) for v in cols.values()}) == 1 and np.all(np.isfinite(cols[ACTION_KEY]))
    with pytest.raises(KeyError, match="not one this policy was trained on"):
        rollout(sim, actor, "push_cube_left", seed=0, max_steps=1)
