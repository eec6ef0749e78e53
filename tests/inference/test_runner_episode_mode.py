"""PolicyRunner episode mode (practice): the task language of a multi-task policy, and exploration with a held gripper."""

import numpy as np
import pytest
import torch

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import PolicyRunner
from robot_stack.policies.base import make_policy
from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
from robot_stack.policies.normalizer import Normalizer, ee_delta_bounds
from robot_stack.types import rig_features

TASKS = ["put the cube in the bowl", "take the cube out of the bowl"]


@pytest.fixture
def checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.04, 0.04, (100, 7))
    actions[:, 6] = rng.integers(0, 2, 100)
    norm = Normalizer.fit(actions, rng.normal(size=(100, 14)), action_bounds=ee_delta_bounds(0.05, 0.25))
    cfg = {"arch": "none", "cameras": [], "use_state": True, "latent_dim": 16, "actor_hidden_dims": [16],
           "critic_hidden_dims": [16], "conditioning": "onehot", "tasks": TASKS, "deploy_task": TASKS[0]}
    torch.manual_seed(0)
    policy = make_policy("actor_critic", cfg, norm)
    with torch.no_grad():  # a gripper logit near 0: fresh samples would flip it about every other tick
        for p in policy.parameters():
            p.mul_(0.01)
    schema = PolicySchema.from_features(rig_features({}, n_joints=6))
    path = save_checkpoint(policy.eval(), norm, schema, tmp_path / "ckpt", 1, step=1)
    obs = {"observation.state": rng.normal(size=14).astype(np.float32)}
    return path, schema, obs


def test_language_and_exploration_with_a_held_gripper(checkpoint):
    path, schema, obs = checkpoint
    runner = PolicyRunner(schema)
    runner.request_load(make_update(path))
    assert runner.wait_idle(30)
    greedy = [runner.step(obs) for _ in range(3)]
    assert all(np.array_equal(greedy[0], a) for a in greedy)  # greedy by default: the same obs, the same action
    runner.set_episode_mode(TASKS[1], explore=False)
    runner.step(obs)
    assert runner._policy.config.deploy_task == TASKS[1]  # the policy object that acted
    runner.set_episode_mode(TASKS[0], explore=True, gripper_hold_steps=4)
    acts = np.stack([runner.step(obs) for _ in range(24)])
    assert len({tuple(a[:6]) for a in acts}) == 24  # sampled: every tick differs
    grip = acts[:, 6]
    assert set(np.unique(grip)) <= {0.0, 1.0}
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, grip, -1]) != 0))
    # Every decision is held >= 4 ticks. Not the first run: the episode starts from the homed (open) state, so
    # the first sampled decision may change it at once (GripperHold.reset). Not the last one: cut off.
    assert len(runs) >= 3 and runs[1:-1].min() >= 4, grip
    runner.close()


def test_unknown_language_is_a_wiring_fault_naming_the_tasks(checkpoint):
    path, schema, obs = checkpoint
    runner = PolicyRunner(schema)
    runner.request_load(make_update(path))
    assert runner.wait_idle(30)
    runner.step(obs)  # swapped in: now the runner knows the policy's tasks
    with pytest.raises(ValueError, match="not trained on task 'stack the blocks'"):
        runner.set_episode_mode("stack the blocks")  # refused at once against the active policy
    other = PolicyRunner(schema)  # no policy yet: accepted, then refused at the first tick of the new policy
    other.set_episode_mode("stack the blocks")
    other.request_load(make_update(path))
    assert other.wait_idle(30)
    with pytest.raises(KeyError, match="was not trained on task 'stack the blocks'"):
        other.step(obs)
    other.close()
    with pytest.raises(ValueError, match="min_hold_steps"):
        runner.set_episode_mode(TASKS[0], explore=True, gripper_hold_steps=0)
    runner.close()
