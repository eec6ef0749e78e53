"""Prompt, tokens, image tensor, action bins and un-normalisation, as the OpenVLA reference defines them."""

from __future__ import annotations

import numpy as np
import pytest

from robot_stack.policies.openvla.policy import OpenVLAPolicy, normalizer_from_statistics
from robot_stack.policies.openvla.processor import ActionTokenizer, openvla_prompt
from robot_stack.policies.openvla.release import action_statistics, read_release
from robot_stack_testing.tiny_openvla import INSTRUCTION


def test_the_prompt_is_the_exact_openvla_string():
    assert openvla_prompt("Put the Cube in the bowl") == \
        "In: What action should the robot take to put the cube in the bowl?\nOut:"


def test_prompt_tokens_start_with_bos_and_end_with_the_empty_piece_once(base_policy):
    tok = base_policy.base.tokenizer
    ids = tok.prompt_ids(INSTRUCTION)
    assert ids[0] == tok.bos_id and ids[-1] == tok.empty_piece_id and ids[-2] != tok.empty_piece_id
    assert tok.tokenizer.decode(ids[1:-1]) == openvla_prompt(INSTRUCTION)
    assert tok.tokenizer.id_to_token(tok.empty_piece_id) == "\u2581"
    # No prompt token collides with an action id (the last 256 ids are rare pieces, as in Llama-2).
    assert max(ids) < base_policy.action_tokenizer.first_action_id


def test_release_action_ids_are_the_last_256_of_32000():
    at = ActionTokenizer(vocab_size=32000)
    ids = at.encode(np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -7.0, 7.0]))
    assert ids.min() >= 31744 and ids.max() <= 31999 and at.action_token_begin_idx == 31743
    assert ids[0] == 31999 and ids[4] == 31744  # -1 -> digitize 1 -> 32000 - 1; +1 -> 256 -> 31744


def test_action_token_round_trip_is_within_half_a_bin():
    at = ActionTokenizer(vocab_size=768)
    a = np.concatenate([np.linspace(-1, 1, 10_001), np.random.default_rng(0).uniform(-1, 1, 10_000)])
    back = at.decode(at.encode(a))
    assert np.max(np.abs(back - a)) <= at.half_bin_width + 1e-12
    assert np.isclose(at.half_bin_width, 1 / 255)


def test_unnormalisation_uses_q01_q99_and_leaves_the_masked_gripper(tiny_base):
    stats = action_statistics(read_release(tiny_base).norm_stats, None)
    norm = normalizer_from_statistics(stats)
    q01, q99 = np.array(stats["q01"]), np.array(stats["q99"])
    a_n = np.array([-1.0, 1.0, 0.0, 0.5, -0.5, 0.25, 0.996])
    expected = 0.5 * (a_n + 1) * (q99 - q01) + q01          # modeling_prismatic.py predict_action
    expected[6] = a_n[6]                                     # mask False: the gripper passes through
    assert np.allclose(norm.unnormalize_action(a_n), expected)


def test_unnorm_key_is_required_with_several_datasets_and_must_exist(tiny_base_two_datasets):
    stats = read_release(tiny_base_two_datasets).norm_stats
    with pytest.raises(ValueError, match=r"trained on 2 datasets; set unnorm_key.*bridge_orig"):
        action_statistics(stats, None)
    with pytest.raises(ValueError, match=r"unnorm_key 'bridge' is not in dataset_statistics.json"):
        action_statistics(stats, "bridge")
    with pytest.raises(ValueError, match="set unnorm_key"):
        OpenVLAPolicy.from_base(tiny_base_two_datasets)
    fractal = OpenVLAPolicy.from_base(tiny_base_two_datasets, unnorm_key="fractal20220817_data")
    assert np.allclose(fractal.normalizer.action_q99[:6], np.array(stats["fractal20220817_data"]["action"]["q99"][:6]))


def test_images_become_224px_per_backbone_with_each_backbones_mean_and_std(base_policy):
    image = np.full((96, 128, 3), (255, 128, 0), dtype=np.uint8)
    x = base_policy.base.images(image).numpy()
    assert x.shape == (6, 224, 224) and x.dtype == np.float32
    rgb = np.array([255, 128, 0]) / 255.0
    dino = (rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]   # ImageNet statistics (DINOv2)
    siglip = (rgb - 0.5) / 0.5                                     # SigLIP
    assert np.allclose(x[:, 100, 100], np.concatenate([dino, siglip]), atol=1e-5)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        base_policy.base.images(image.astype(np.float32))
