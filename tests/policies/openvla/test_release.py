"""Loading the released directory layout with our own modules: names, shapes, values, and clear refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from robot_stack.policies.checkpoint import CheckpointError
from robot_stack.policies.openvla.modeling import build_empty_model, load_release_state, model_from_state
from robot_stack.policies.openvla.release import (
    OpenVLADirectoryError,
    base_fingerprint,
    read_architecture,
    read_release,
)

# config.json of openvla/openvla-7b, minus norm_stats: the text_config is this sparse in the release.
RELEASE_CONFIG = {
    "model_type": "openvla", "arch_specifier": "no-align+fused-gelu-mlp", "image_resize_strategy": "resize-naive",
    "image_sizes": [224, 224], "n_action_bins": 256, "pad_to_multiple_of": 64, "pad_token_id": 32000,
    "text_config": {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064},
    "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
    "timm_override_act_layers": [None, None], "use_fused_vision_backbone": True,
}


def test_the_released_7b_architecture_has_the_release_names_and_shapes(tmp_path):
    arch = read_architecture(RELEASE_CONFIG, tmp_path / "config.json")
    assert arch.action_vocab_size == 32000  # 32064 - 64: action ids 31744..31999
    shapes = {k: tuple(v.shape) for k, v in build_empty_model(arch, torch.bfloat16).state_dict().items()}
    expected = {
        "vision_backbone.featurizer.cls_token": (1, 1, 1024),
        "vision_backbone.featurizer.reg_token": (1, 4, 1024),
        "vision_backbone.featurizer.pos_embed": (1, 256, 1024),       # 224 px / 14 = 16 x 16 patches, no prefix
        "vision_backbone.featurizer.patch_embed.proj.weight": (1024, 3, 14, 14),
        "vision_backbone.featurizer.blocks.23.attn.qkv.weight": (3072, 1024),
        "vision_backbone.featurizer.blocks.23.ls1.scale_factor": (1024,),
        "vision_backbone.featurizer.blocks.23.ls2.scale_factor": (1024,),
        "vision_backbone.featurizer.norm.weight": (1024,),
        "vision_backbone.fused_featurizer.pos_embed": (1, 256, 1152),
        "vision_backbone.fused_featurizer.blocks.26.mlp.fc1.weight": (4304, 1152),
        "vision_backbone.fused_featurizer.attn_pool.latent": (1, 1, 1152),
        "vision_backbone.fused_featurizer.attn_pool.kv.weight": (2304, 1152),
        "vision_backbone.fused_featurizer.attn_pool.mlp.fc2.weight": (1152, 4304),
        "projector.fc1.weight": (8704, 2176), "projector.fc2.weight": (4096, 8704), "projector.fc3.weight": (4096, 4096),
        "language_model.model.embed_tokens.weight": (32064, 4096),
        "language_model.model.layers.31.self_attn.q_proj.weight": (4096, 4096),
        "language_model.model.layers.31.mlp.gate_proj.weight": (11008, 4096),
        "language_model.model.norm.weight": (4096,),
        "language_model.lm_head.weight": (32064, 4096),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any("gamma" in k or "fused_featurizer.cls_token" in k or "fused_featurizer.blocks.0.ls1" in k
                   for k in shapes)
    assert 7.5e9 < sum(torch.Size(s).numel() for s in shapes.values()) < 7.6e9   # "OpenVLA-7B": 7.54 B parameters


def test_tiny_release_loads_every_tensor_unchanged_under_the_release_names(tiny_base):
    release = read_release(tiny_base)
    assert len(release.shard_files) == 3 and (tiny_base / "model.safetensors.index.json").is_file()
    state = load_release_state(release, "cpu", torch.float32)
    model = model_from_state(release.architecture, state, "cpu", torch.float32)
    on_disk = {}
    for shard in release.shard_files:
        on_disk.update(load_file(str(tiny_base / shard)))
    assert set(model.state_dict()) == set(on_disk)
    for key in ("vision_backbone.featurizer.blocks.1.ls1.scale_factor", "projector.fc3.weight",
                "vision_backbone.fused_featurizer.attn_pool.q.bias", "language_model.lm_head.weight"):
        assert torch.equal(model.state_dict()[key], on_disk[key].float())
    # The module's parameters are the cached tensors themselves (several adapters share one base).
    assert model.language_model.lm_head.weight.data_ptr() == state["language_model.lm_head.weight"].data_ptr()


def _copy(base, tmp_path):
    dst = tmp_path / "base"
    shutil.copytree(base, dst)
    return dst


def _rewrite_shard_with(base, key, tensor=None):
    """Drop (tensor None) or replace one tensor in the shard that holds it; returns the shard name."""
    index = json.loads((base / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][key]
    tensors = load_file(str(base / shard))
    if tensor is None:
        del tensors[key]
    else:
        tensors[key] = tensor
    save_file(tensors, str(base / shard))
    return shard


def test_a_missing_weight_is_refused_naming_the_key(tiny_base, tmp_path):
    base = _copy(tiny_base, tmp_path)
    _rewrite_shard_with(base, "projector.fc2.bias")
    with pytest.raises(OpenVLADirectoryError, match=r"'projector\.fc2\.bias' is missing"):
        load_release_state(read_release(base), "cpu", torch.float32)


def test_a_wrong_shape_is_refused_naming_the_key_and_both_shapes(tiny_base, tmp_path):
    base = _copy(tiny_base, tmp_path)
    shard = _rewrite_shard_with(base, "vision_backbone.featurizer.pos_embed", torch.zeros(1, 257, 32))
    with pytest.raises(OpenVLADirectoryError,
                       match=rf"{shard}: parameter 'vision_backbone\.featurizer\.pos_embed' has shape \[1, 257, 32\].*"
                             r"needs \[1, 256, 32\]"):
        load_release_state(read_release(base), "cpu", torch.float32)


def test_an_unexpected_weight_is_refused_naming_the_key(tiny_base, tmp_path):
    base = _copy(tiny_base, tmp_path)
    index = json.loads((base / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["projector.fc1.bias"]
    tensors = load_file(str(base / shard))
    tensors["vision_backbone.featurizer.blocks.0.ls1.gamma"] = torch.ones(32)   # timm's native name, not the release's
    save_file(tensors, str(base / shard))
    with pytest.raises(OpenVLADirectoryError, match=r"unexpected parameter 'vision_backbone\.featurizer\.blocks\.0\.ls1\.gamma'"):
        load_release_state(read_release(base), "cpu", torch.float32)


@pytest.mark.parametrize("victim", ["tokenizer.json", "model-00002-of-00003.safetensors", "config.json",
                                    "preprocessor_config.json"])
def test_a_missing_file_is_refused_naming_the_file(tiny_base, tmp_path, victim):
    base = _copy(tiny_base, tmp_path)
    (base / victim).unlink()
    with pytest.raises(OpenVLADirectoryError, match=str(base / victim).replace(".", r"\.")):
        read_release(base)


def test_a_non_openvla_config_is_refused(tiny_base, tmp_path):
    base = _copy(tiny_base, tmp_path)
    cfg = json.loads((base / "config.json").read_text())
    cfg["model_type"] = "llava"
    (base / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type is 'llava', not 'openvla'"):
        read_release(base)


def test_the_fingerprint_names_the_base_and_changes_with_its_weights(tiny_base, tmp_path):
    base = _copy(tiny_base, tmp_path)
    assert base_fingerprint(base) == base_fingerprint(tiny_base)
    assert base_fingerprint(base, full=True).startswith("full:")
    key = "language_model.model.layers.1.mlp.down_proj.weight"
    index = json.loads((base / "model.safetensors.index.json").read_text())
    old = load_file(str(base / index["weight_map"][key]))[key]
    _rewrite_shard_with(base, key, old + 0.5)  # same shapes and names, other values: another fine-tune
    assert base_fingerprint(base) != base_fingerprint(tiny_base)
