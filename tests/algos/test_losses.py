"""CQL / Cal-QL / PTR pieces against values computed by hand on tiny tensors."""

import math

import numpy as np
import pytest
import torch

from robot_stack.algos.losses import cql_regulariser, max_q_backup_target, mc_returns, ptr_rewards
from robot_stack.learn.mixing import PriorTargetSchedule, offline_online_ratio, split_batch


def test_cql_logsumexp_terms_by_hand():
    # B=1, N=2, |A|=1: log(0.5^1) = −log 2 is subtracted from random-action Q (importance weight of U[−1,1]).
    q_data = torch.tensor([1.0])
    q_rand = torch.tensor([[0.0, 1.0]])
    q_pi = torch.tensor([[2.0, 0.5]])
    logp = torch.tensor([[0.0, -1.0]])
    diff, info = cql_regulariser(q_data, q_rand, q_pi, logp, action_dim=1)
    terms = [0.0 + math.log(2), 1.0 + math.log(2), 2.0, 1.5]
    expected = math.log(sum(math.exp(t) for t in terms)) - 1.0
    assert float(diff) == pytest.approx(expected, abs=1e-6)
    # Next-state policy samples enter as one more block of the same logsumexp.
    diff2, _ = cql_regulariser(q_data, q_rand, q_pi, logp, 1, torch.tensor([[3.0]]), torch.tensor([[1.0]]))
    assert float(diff2) == pytest.approx(math.log(sum(math.exp(t) for t in [*terms, 2.0])) - 1.0, abs=1e-6)
    # Temperature T: T·logsumexp(x/T).
    diff3, _ = cql_regulariser(q_data, q_rand, q_pi, logp, 1, temperature=2.0)
    assert float(diff3) == pytest.approx(2 * math.log(sum(math.exp(t / 2) for t in terms)) - 1.0, abs=1e-6)


def test_calql_clip_applies_to_policy_actions_only():
    q_data = torch.tensor([0.0])
    q_rand = torch.tensor([[-10.0]])         # far below the bound: must NOT be raised
    q_pi = torch.tensor([[-8.0, 4.0]])       # first below G=2 -> clipped to 2; second above -> kept
    logp = torch.tensor([[0.0, 0.0]])
    q_next = torch.tensor([[-9.0]])          # next-state policy action: clipped too
    logp_next = torch.tensor([[0.0]])
    g = torch.tensor([2.0])
    diff, info = cql_regulariser(q_data, q_rand, q_pi, logp, 1, q_next, logp_next, mc_lower_bound=g)
    terms = [-10.0 + math.log(2), 2.0, 2.0, 4.0]
    assert float(diff) == pytest.approx(math.log(sum(math.exp(t) for t in terms)), abs=1e-6)
    assert float(info["bound_rate"]) == pytest.approx(0.5)   # one of two current-policy Q-values was below G
    # Plain CQL on the same values differs (the clip really happened).
    plain, _ = cql_regulariser(q_data, q_rand, q_pi, logp, 1, q_next, logp_next)
    assert float(plain) < float(diff) - 0.1


def test_max_q_backup_target():
    # target_q (num_qs=2, B=1, n=3): min over critics per action -> [1, 0, 2]; max over actions -> 2.
    tq = torch.tensor([[[1.0, 5.0, 2.0]], [[3.0, 0.0, 4.0]]])
    y = max_q_backup_target(tq, torch.tensor([-1.0]), torch.tensor([1.0]), 0.9)
    assert float(y) == pytest.approx(-1.0 + 0.9 * 2.0)
    assert float(max_q_backup_target(tq, torch.tensor([10.0]), torch.tensor([0.0]), 0.9)) == 10.0


def test_mc_returns_success_and_failure():
    # PTR rewards of a successful 5-step episode: [-1, -1, 10, 10, 10], masks [1, 1, 0, 0, 0].
    r, m = ptr_rewards(5, success=True)
    assert r.tolist() == [-1, -1, 10, 10, 10] and m.tolist() == [1, 1, 0, 0, 0]
    g = mc_returns(r, m, 0.5, failure_reward=-1.0)
    # G_4 = 10, G_3 = 10 (mask 0), G_2 = 10, G_1 = −1 + .5·10 = 4, G_0 = −1 + .5·4 = 1
    np.testing.assert_allclose(g, [1.0, 4.0, 10.0, 10.0, 10.0])
    # A failed episode: every reward is r_neg = −1 -> G = −1/(1 − γ) everywhere.
    r, m = ptr_rewards(4, success=False)
    assert r.tolist() == [-1] * 4 and m.tolist() == [1] * 4
    np.testing.assert_allclose(mc_returns(r, m, 0.5, failure_reward=-1.0), [-2.0] * 4)
    # Without the failure rule: the discounted sum, bootstrapping stops at the end of the data.
    np.testing.assert_allclose(mc_returns(r, m, 0.5), [-1.875, -1.75, -1.5, -1.0])


def test_ptr_reward_variants():
    r, m = ptr_rewards(2, success=True, num_final_reward_steps=3)   # shorter than k: all positive
    assert r.tolist() == [10, 10] and m.tolist() == [0, 0]
    r, m = ptr_rewards(4, success=True, num_final_reward_steps=1, scale=10, bias=-5, term_as_rew=False)
    assert r.tolist() == [-5, -5, -5, 5] and m.tolist() == [1, 1, 1, 1]


def test_mixing_ratios():
    assert split_batch(64, 0.9) == (57, 7)          # floor(0.9·64) prior, rest target
    assert split_batch(256, 0.5) == (128, 128)
    assert split_batch(10, 1.0) == (10, 0)
    with pytest.raises(ValueError):
        split_batch(10, 1.5)
    s = PriorTargetSchedule(switch_step=100, ratio_before=1.0, ratio_after=0.9)
    assert (s.ratio_at(0), s.ratio_at(99), s.ratio_at(100)) == (1.0, 1.0, 0.9)
    assert offline_online_ratio(0.5, 10, 1000) == 0.5
    assert offline_online_ratio(-1, 300, 100) == pytest.approx(0.75)
