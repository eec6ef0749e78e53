"""RL transitions from a real store: PTR rewards/masks, MC returns, next-observation indexing, mixing, prefetch."""

import numpy as np
import pytest

from robot_stack.learn.prefetch import prefetch
from robot_stack.learn.rl_dataset import RewardConfig, TransitionDataset, mixed_sample

KEYS = ["observation.state"]


def test_transitions_rewards_masks_and_next(store_factory):
    _, store = store_factory(2, hw=(8, 8), n_steps=5, successes={1: False})
    ds = TransitionDataset(KEYS, RewardConfig(), discount=0.5, tasks=["put the cube in the bowl"])
    assert ds.add_episodes(store, [0, 1]) == 10 and ds.add_episodes(store, [0, 1]) == 0
    a = ds.arrays
    assert a["reward"].tolist() == [-1, -1, 10, 10, 10] + [-1] * 5
    assert a["mask"].tolist() == [1, 1, 0, 0, 0] + [1] * 5
    np.testing.assert_allclose(a["mc_return"], [1, 4, 10, 10, 10] + [-2] * 5)
    assert a["next_index"].tolist() == [1, 2, 3, 4, 4, 6, 7, 8, 9, 9]
    batch = ds.sample(64, np.random.default_rng(0))
    state = store.get_episode(0)["observation.state"]
    # Every sampled next state is the state one step later in the same episode (or the last one itself).
    all_states = np.concatenate([state, store.get_episode(1)["observation.state"]])
    for s, n in zip(batch["observation.state"].numpy(), batch["next.observation.state"].numpy(), strict=True):
        i = int(np.flatnonzero((all_states == s).all(1))[0])
        assert (n == all_states[a["next_index"][i]]).all()


def test_mixed_sample_ratio(store_factory):
    _, store = store_factory(2, hw=(8, 8), n_steps=4)
    prior = TransitionDataset(KEYS, RewardConfig(), 0.9)
    target = TransitionDataset(KEYS, RewardConfig(), 0.9)
    prior.add_episodes(store, [0])
    target.add_episodes(store, [1])
    ep1 = store.get_episode(1)["observation.state"]
    b = mixed_sample([prior, target], 0.9, 20, np.random.default_rng(1))
    from_target = [any((s == ep1).all(1)) for s in b["observation.state"].numpy()]
    assert sum(from_target) == 2 and not any(from_target[:18])   # floor(0.9·20) prior first, then 2 target
    empty = TransitionDataset(KEYS, RewardConfig(), 0.9)
    assert len(mixed_sample([prior, empty], 0.5, 7, np.random.default_rng(0))["action"]) == 7


def test_prefetch_order_and_errors():
    assert list(prefetch(range(5), lambda s: s * s, depth=2)) == [(s, s * s) for s in range(5)]

    def bad(s):
        if s == 2:
            raise RuntimeError("boom")
        return s

    with pytest.raises(RuntimeError, match="boom"):
        list(prefetch(range(5), bad, depth=2))
