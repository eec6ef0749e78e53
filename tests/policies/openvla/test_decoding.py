"""select_action / sample_actions: one prefill, K sequences on the shared KV cache; greedy equals a naive decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policies.openvla.policy import OpenVLAPolicy
from robot_stack_testing.tiny_openvla import INSTRUCTION


def naive_greedy_ids(policy: OpenVLAPolicy, obs, n_tokens: int = 7) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy decoding without any cache: the whole sequence is recomputed for every token."""
    vla, at = policy.vla, policy.action_tokenizer
    pixels, ids = policy._inputs(obs)
    rows = slice(at.first_action_id, at.vocab_size)
    chosen, all_logits = [], []
    with torch.no_grad():
        for _ in range(n_tokens):
            seq = torch.cat([ids, torch.tensor([chosen], dtype=torch.long)], dim=1) if chosen else ids
            hidden, _ = vla.hidden_states(vla.multimodal_embeddings(pixels, seq))
            logits = vla.logits(hidden[0, -1], rows).float()
            all_logits.append(logits)
            chosen.append(int(logits.argmax()) + at.first_action_id)
    return chosen, all_logits


def test_select_action_is_a_physical_float32_7d_action_with_a_binary_gripper(base_policy, obs):
    action = base_policy.select_action(obs)
    low, high = base_policy.action_bounds()
    assert action.shape == (7,) and action.dtype == np.float32
    assert np.all(action >= low - 1e-6) and np.all(action <= high + 1e-6)
    assert action[6] in (0.0, 1.0)


def test_greedy_kv_cache_decoding_equals_a_full_recompute(base_policy, obs):
    cached = base_policy.sample_token_ids(obs, 1, temperature=0.0, top_p=1.0)[0].tolist()
    naive, logits = naive_greedy_ids(base_policy, obs)
    assert cached == naive
    assert len(set(naive)) > 1, "the tiny model should not emit one token only (the test would be weak)"
    # Margins of the greedy choices are far above the cache-vs-recompute float error.
    margins = [float(x.topk(2).values[0] - x.topk(2).values[1]) for x in logits]
    assert min(margins) > 1e-4


def test_greedy_k1_equals_select_action_and_greedy_k_repeats_it(base_policy, obs):
    action = base_policy.select_action(obs)
    assert np.array_equal(base_policy.sample_actions(obs, 1, temperature=0.0)[0], action)
    k4 = base_policy.sample_actions(obs, 4, temperature=0.0)
    assert k4.shape == (4, 7) and np.array_equal(k4, np.repeat(action[None], 4, axis=0))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_k_samples_have_shape_k_by_7_within_bounds(base_policy, obs, k):
    actions = base_policy.sample_actions(obs, k, temperature=1.0, top_p=1.0,
                                         generator=torch.Generator().manual_seed(0))
    low, high = base_policy.action_bounds()
    assert actions.shape == (k, 7) and actions.dtype == np.float32
    assert np.all(actions >= low - 1e-6) and np.all(actions <= high + 1e-6)
    assert set(np.unique(actions[:, 6])) <= {0.0, 1.0}


def test_sampling_draws_different_sequences_and_tiny_top_p_is_greedy(base_policy, obs):
    ids = base_policy.sample_token_ids(obs, 16, temperature=2.0, top_p=1.0, generator=torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in ids.tolist()}) > 1
    greedy = base_policy.sample_token_ids(obs, 1, temperature=0.0, top_p=1.0)
    nucleus = base_policy.sample_token_ids(obs, 8, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(2))
    assert torch.equal(nucleus, greedy.expand(8, -1))


def test_the_instruction_comes_from_the_observation_or_deploy_task(base_policy, obs):
    by_config = base_policy.select_action(obs)
    assert np.array_equal(base_policy.select_action({**obs, "task": INSTRUCTION}), by_config)
    base_policy.config.deploy_task = None
    with pytest.raises(ValueError, match="needs a language instruction"):
        base_policy.select_action(obs)
