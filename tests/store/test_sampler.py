"""TrajectorySampler: windows/padding/masks, n-step and Monte-Carlo returns against a hand computation,
the direct shard reader against zarr, exclusion/split filtering, and the torch DataLoader wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from store_data import make_episode

from robot_stack.store import TrajectoryStore
from robot_stack.store.fastread import ArrayReader
from robot_stack.store.sampler import RewardConfig, SamplerConfig, TrajectorySampler
from robot_stack.types import ACTION_KEY, STATE_KEY, image_key


@pytest.fixture
def store(tmp_path, schema):
    s = TrajectoryStore.create(tmp_path / "s.zarr", schema, fsync=False)
    for i in range(4):
        s.append_episode(make_episode(i, n_steps=[70, 5, 12, 90][i]),
                         {"task": f"task {i}", "source": "sim", "success": i != 2})
    yield s
    s.close()


def test_fastread_matches_zarr_across_shard_boundaries(store, schema):
    for key in schema.features:
        r = ArrayReader(store.path / "data" / key)
        for a, b in [(0, store.n_steps), (3, 66), (63, 65), (64, 128), (100, 101)]:
            got = r.read(a, b)
            if key.startswith("observation.images"):
                assert got is not None, f"{key}: direct reader refused the store's own layout"
            if got is not None:
                np.testing.assert_array_equal(got, store.read(key, a, b), err_msg=f"{key}[{a}:{b}]")


def test_windows_padding_masks_and_returns(store):
    cfg = SamplerConfig(n_obs_steps=3, action_horizon=4, n_step=3, discount=0.5)
    s = TrajectorySampler(store, cfg)
    assert s.reward_from_key is False  # no `reward` feature: sparse success reward on the last step
    eps = np.array([0, 0, 1, 2, 3])
    t = np.array([0, 69, 2, 11, 40])
    b = s.gather(eps, t)
    ep0, ep1 = make_episode(0, 70), make_episode(1, 5)
    wrist = image_key("wrist")
    # history at t=0 repeats frame 0 and is masked
    np.testing.assert_array_equal(b["obs"][wrist][0], ep0[wrist][[0, 0, 0]])
    assert b["obs_mask"][0].tolist() == [False, False, True]
    np.testing.assert_array_equal(b["obs"][STATE_KEY][2], ep1[STATE_KEY][[0, 1, 2]])
    # action window at the last step repeats the last action and is masked
    np.testing.assert_array_equal(b["action"][1], ep0[ACTION_KEY][[69, 69, 69, 69]])
    assert b["action_mask"][1].tolist() == [True, False, False, False]
    np.testing.assert_array_equal(b["action"][2], ep1[ACTION_KEY][[2, 3, 4, 4]])
    # next observation: history ending at min(t + n, T - 1)
    np.testing.assert_array_equal(b["next_obs"][STATE_KEY][2], ep1[STATE_KEY][[2, 3, 4]])
    np.testing.assert_array_equal(b["next_obs"][STATE_KEY][4], make_episode(3, 90)[STATE_KEY][[41, 42, 43]])
    # rewards: success -> 1 on the last step; episode 2 failed -> 0 everywhere
    # ep1 (T=5, success) at t=2: r = [0, 0, 1] -> 0.5^2; window reaches the terminal end -> bootstrap 0
    assert b["reward"][2] == pytest.approx(0.25) and b["done"][2] and b["bootstrap"][2] == 0.0
    assert b["mc_return"][2] == pytest.approx(0.25)
    # ep0 at t=69 (last step, success): reward 1, terminal
    assert b["reward"][1] == pytest.approx(1.0) and b["bootstrap"][1] == 0.0
    # ep2 failed, t=11 (last): reward 0, not terminal (terminal_on="success") -> bootstrap discount^1
    assert b["reward"][3] == 0.0 and b["done"][3] and b["bootstrap"][3] == pytest.approx(0.5)
    # ep3 mid-episode: no reward yet, bootstrap discount^3; MC return = 0.5^(89-40)
    assert b["reward"][4] == 0.0 and not b["done"][4] and b["bootstrap"][4] == pytest.approx(0.125)
    assert b["mc_return"][4] == pytest.approx(0.5 ** 49)
    assert b["task"] == ["task 0", "task 0", "task 1", "task 2", "task 3"]


def test_terminal_and_reward_config(store):
    s = TrajectorySampler(store, SamplerConfig(n_step=1, discount=0.9,
                                                reward=RewardConfig(success_reward=2.0, failure_reward=-1.0,
                                                                    terminal_on="end")))
    b = s.gather(np.array([2, 1]), np.array([11, 4]))
    assert b["reward"].tolist() == [-1.0, 2.0] and b["bootstrap"].tolist() == [0.0, 0.0]
    with pytest.raises(KeyError, match="no 'reward' feature"):
        TrajectorySampler(store, SamplerConfig(reward=RewardConfig(source="key")))
    with pytest.raises(ValueError, match="terminal_on"):
        RewardConfig(terminal_on="sometimes")


def test_random_sampling_uniform_respects_exclusion_split_and_cache_budget(store):
    s = TrajectorySampler(store, SamplerConfig(seed=3, cache_budget_bytes=1))  # budget 1 byte: keeps 1 episode
    b = s.sample(2000)
    counts = np.bincount(b["episode"], minlength=4)
    np.testing.assert_allclose(counts / 2000, np.array([70, 5, 12, 90]) / 177, atol=0.04)
    for k in range(len(b["t"]))[:50]:  # every sampled frame is the stored frame
        e, t = int(b["episode"][k]), int(b["t"][k])
        step = store.episode_slice(e).start + t
        np.testing.assert_array_equal(b["obs"][STATE_KEY][k, -1], store.read(STATE_KEY, step, step + 1)[0])
    assert len(s._cache) == 1
    store.exclude([3])
    assert s.refresh() == 3 and 3 not in set(s.sample(500)["episode"].tolist())
    store.include([3])
    store.set_split(0.5, seed=7)
    val = set(store.episodes(split="val"))
    sv = TrajectorySampler(store, SamplerConfig(split="val"))
    assert set(sv.episode_ids.tolist()) == val


def test_torch_loader_workers(store):
    torch = pytest.importorskip("torch")
    from robot_stack.store.sampler import torch_loader

    dl = torch_loader(store.path, SamplerConfig(n_obs_steps=2, action_horizon=3), batch_size=16, num_workers=2)
    it = iter(dl)
    for _ in range(3):
        b = next(it)
        assert b["obs"][image_key("wrist")].shape == (16, 2, 12, 16, 3)
        assert b["action"].shape == (16, 3, 7) and b["action"].dtype == torch.float32
        assert len(b["task"]) == 16
    del it, dl


def test_failed_trajectory_mc_return_matches_the_learner():
    """F12: the sampler's return-to-go is the learner's (robot_stack.store.returns), including Cal-QL's rule that a
    trajectory of only failure rewards is worth r_neg / (1 − γ) at every step."""
    from robot_stack.store.sampler import _Episode

    failed = np.full(4, -1.0)
    np.testing.assert_allclose(_Episode({}, failed, False, "t", 0.5, failure_reward=-1.0).rtg, [-2.0] * 4)
    np.testing.assert_allclose(_Episode({}, failed, False, "t", 0.5).rtg, [-1.875, -1.75, -1.5, -1.0])
    ok = np.array([-1.0, -1.0, 0.0])   # reached success: the finite discounted sum, rule not applied
    np.testing.assert_allclose(_Episode({}, ok, True, "t", 0.5, failure_reward=-1.0).rtg, [-1.5, -1.0, 0.0])
