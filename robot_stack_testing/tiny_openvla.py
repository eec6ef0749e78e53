"""A tiny, randomly initialised OpenVLA saved in the released `openvla/openvla-7b` layout (tests, benchmarks).

    build_tiny_openvla(dir) ─► dir/config.json                 model_type "openvla", tiny text_config + ViT specs
                               dir/model-0000k-of-00003.safetensors + model.safetensors.index.json
                               dir/tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, added_tokens.json)
                               dir/preprocessor_config.json    224 px, DINOv2 (ImageNet) and SigLIP (0.5) mean/std
                               dir/dataset_statistics.json     one ("bridge_orig") or two datasets

Same architecture and parameter names as the release (the same module code builds both), only small: two ViTs
of a few blocks, a 2-layer Llama, and a vocabulary that keeps the release's action-id rule. The release's
vocabulary is 32000 Llama-2 pieces + <PAD>, padded to 32064 (pad_to_multiple_of 64), and its last 256 pieces
(31744..31999) are rare characters that the action bins overwrite. Here: a byte-fallback BPE tokenizer in
Llama-2's tokenizer.json layout, trained with the `tokenizers` library on robot instructions, filled to 512
pieces, then 256 rare CJK characters as the action pieces: 768 base ids, <PAD> = 768, text vocab 832.
tokenizer.model (SentencePiece) is not written: the loader reads tokenizer.json only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY_BASE_VOCAB = 768
TINY_PAD_MULTIPLE = 64
N_ACTION_BINS = 256
INSTRUCTION = "Put the cube in the bowl"
_SPECIALS = ("<unk>", "<s>", "</s>")
_CORPUS = [
    "put the cube in the bowl", "pick up the red block", "open the drawer", "close the drawer",
    "put the spoon on the towel", "put carrot on plate", "stack the green block on the blue block",
    "push the button", "wipe the table with the sponge", "move the pot to the left burner",
    "In: What action should the robot take to", "?\nOut:", "flip the pot upright", "put eggplant into pot",
]
# Two ViTs as OpenVLA fuses them: a DINOv2-like one (class + 4 register tokens, layer scale, no position
# embedding for the prefix) and a SigLIP-like one (no class token, attention-pool head), 14 px patches.
TINY_VIT_SPECS = [
    {"embed_dim": 32, "depth": 3, "num_heads": 2, "mlp_ratio": 4.0, "patch_size_px": 14, "class_token": True,
     "reg_tokens": 4, "no_embed_class": True, "layer_scale": True, "attn_pool": False},
    {"embed_dim": 48, "depth": 3, "num_heads": 2, "mlp_ratio": 3.7362, "patch_size_px": 14, "class_token": False,
     "reg_tokens": 0, "no_embed_class": False, "layer_scale": False, "attn_pool": True},
]


def build_tiny_tokenizer_json() -> dict:
    """A Llama-2-layout tokenizer.json with TINY_BASE_VOCAB base pieces, the last 256 being rare characters."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    byte_pieces = [f"<0x{i:02X}>" for i in range(256)]
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    alphabet = sorted(set("".join(_CORPUS).replace(" ", "\u2581")) | {"\u2581"} | set("abcdefghijklmnopqrstuvwxyz?:"))
    trainer = trainers.BpeTrainer(vocab_size=512 - len(_SPECIALS) - 256, initial_alphabet=alphabet,
                                  show_progress=False, special_tokens=[])
    trainer_tok.train_from_iterator(_CORPUS * 4, trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    pieces = sorted(trained["vocab"], key=trained["vocab"].get)
    filler = [chr(0x0100 + i) for i in range(512)]   # Latin-extended letters nobody types in an instruction
    vocab_list = [*_SPECIALS, *byte_pieces, *pieces]
    vocab_list += [c for c in filler if c not in vocab_list][: 512 - len(vocab_list)]
    vocab_list += [chr(0x4E00 + i) for i in range(N_ACTION_BINS)]  # the action slots (ids 512..767)
    assert len(vocab_list) == TINY_BASE_VOCAB == len(set(vocab_list))
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(_SPECIALS)]
        + [{"id": TINY_BASE_VOCAB, "content": "<PAD>", "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}],
        # Llama-2's (legacy) pipeline: prepend "▁", spaces -> "▁", BPE with byte fallback, "<s> $A" template.
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "},
                                                             "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab_list)}, "merges": trained["merges"]},
    }


def tiny_config(n_datasets: int = 1, text_layers: int = 2, hidden: int = 64, norm_stats: dict | None = None) -> dict:
    text_vocab = TINY_BASE_VOCAB + TINY_PAD_MULTIPLE   # <PAD> appended, padded to a multiple of 64
    return {
        "architectures": ["OpenVLAForActionPrediction"], "model_type": "openvla",
        "arch_specifier": "no-align+fused-gelu-mlp", "vision_backbone_id": "dinosiglip-vit-so-224px",
        "llm_backbone_id": "llama2-7b-pure", "hf_llm_id": "meta-llama/Llama-2-7b-hf",
        "image_resize_strategy": "resize-naive", "image_sizes": [224, 224], "llm_max_length": 2048,
        "n_action_bins": N_ACTION_BINS, "norm_stats": norm_stats or tiny_norm_stats(n_datasets),
        "output_projector_states": False, "pad_to_multiple_of": TINY_PAD_MULTIPLE, "pad_token_id": TINY_BASE_VOCAB,
        "text_config": {"model_type": "llama", "pad_token_id": TINY_BASE_VOCAB, "torch_dtype": "bfloat16",
                        "vocab_size": text_vocab, "hidden_size": hidden, "intermediate_size": 2 * hidden,
                        "num_hidden_layers": text_layers, "num_attention_heads": 4, "num_key_value_heads": 4,
                        "max_position_embeddings": 512},
        "timm_model_ids": ["tiny_dinov2_reg4_test", "tiny_siglip_test"], "timm_override_act_layers": [None, None],
        "robot_stack_vit_specs": TINY_VIT_SPECS, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
        "use_fused_vision_backbone": True,
    }


def tiny_norm_stats(n_datasets: int = 1) -> dict:
    """Bridge-like action statistics: metres / radians per step, gripper unnormalised (mask False)."""
    out = {}
    for i, name in enumerate(["bridge_orig", "fractal20220817_data"][:n_datasets]):
        s = 1.0 + i
        out[name] = {"action": {
            "q01": [-0.03 * s, -0.04 * s, -0.03 * s, -0.1 * s, -0.12 * s, -0.2 * s, 0.0],
            "q99": [0.03 * s, 0.04 * s, 0.04 * s, 0.1 * s, 0.11 * s, 0.2 * s, 1.0],
            "mean": [0.0] * 6 + [0.5], "std": [0.01] * 6 + [0.5],
            "min": [-0.1] * 6 + [0.0], "max": [0.1] * 6 + [1.0],
            "mask": [True] * 6 + [False]}, "num_transitions": 1000, "num_trajectories": 10}
    return out


def preprocessor_config() -> dict:
    """The release's preprocessor_config.json values (processing_prismatic.py; timm data configs)."""
    return {"auto_map": {}, "image_processor_type": "PrismaticImageProcessor", "image_resize_strategy": "resize-naive",
            "input_sizes": [[3, 224, 224], [3, 224, 224]], "interpolations": ["bicubic", "bicubic"],
            "means": [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]], "stds": [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]],
            "processor_class": "PrismaticProcessor", "use_fused_vision_backbone": True}


def save_sharded(state: dict, out_dir: Path, n_shards: int = 3) -> None:
    """model-0000k-of-0000n.safetensors + model.safetensors.index.json, as `save_pretrained` shards them."""
    from safetensors.torch import save_file

    keys = list(state)
    names = [f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors" for i in range(n_shards)]
    weight_map, total = {}, 0
    for i, name in enumerate(names):
        part = {k: state[k].contiguous() for k in keys[i::n_shards]}
        save_file(part, str(out_dir / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
        total += sum(t.numel() * t.element_size() for t in part.values())
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))


def build_tiny_openvla(out_dir: str | Path, seed: int = 0, n_datasets: int = 1, text_layers: int = 2,
                       hidden: int = 64, dtype: str = "bfloat16", init_std: float = 0.2) -> Path:
    """Write a tiny random OpenVLA in the release layout into out_dir (created) and return it.

    init_std scales the random weights up from HF's 0.02 so that the tiny model's logits are not all alike
    (distinct argmaxes make the greedy-decoding tests meaningful)."""
    import torch

    from robot_stack.policies.openvla.modeling import OpenVLAModel
    from robot_stack.policies.openvla.release import read_architecture

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_config(n_datasets, text_layers, hidden)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "tokenizer.json").write_text(json.dumps(build_tiny_tokenizer_json(), ensure_ascii=False, indent=1))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<PAD>", "padding_side": "right", "legacy": False, "model_max_length": 2048,
        "clean_up_tokenization_spaces": False, "tokenizer_class": "LlamaTokenizer"}, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<PAD>"}, indent=2))
    (out / "added_tokens.json").write_text(json.dumps({"<PAD>": TINY_BASE_VOCAB}))
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=2))
    (out / "dataset_statistics.json").write_text(json.dumps(config["norm_stats"], indent=2))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2,
                                                            "pad_token_id": TINY_BASE_VOCAB}))
    torch.manual_seed(seed)
    model = OpenVLAModel(read_architecture(config, out / "config.json"))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "norm1" in name or "norm2" in name or "layernorm" in name:
                continue  # keep norms at 1
            p.copy_(torch.randn(p.shape, generator=gen) * init_std)
    state = {k: v.to(getattr(torch, dtype)) for k, v in model.state_dict().items()}
    save_sharded(state, out)
    return out


def random_image(seed: int = 0, hw: tuple[int, int] = (96, 128)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _join_gloo_group(rank: int, world_size: int, port: int) -> None:
    """This process joins a CPU (gloo) process group on loopback, one torch thread, seeded per rank (so only the
    distributed strategy can make the ranks agree)."""
    import os

    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), HF_HUB_OFFLINE="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(100 + rank)


def ddp_finetune_worker(rank: int, world_size: int, base_dir: str, port: int, out_dir: str, steps: int) -> None:
    """One rank of the world-size-2 CPU/gloo LoRA test (tests/policies/openvla/test_distributed.py): every rank
    seeds differently (so only DDP's broadcast + gradient averaging can make them agree), trains on its own
    batches and writes its adapter to out_dir/rank{rank}.safetensors."""

    import torch.distributed as dist
    from safetensors.torch import save_file

    from robot_stack.policies.openvla.finetune import (
        FinetuneConfig,
        finetune,
        fit_action_normalizer,
    )
    from robot_stack.policies.openvla.policy import OpenVLAConfig, OpenVLAPolicy

    _join_gloo_group(rank, world_size, port)
    try:
        frames = synthetic_frames(seed=7)
        policy = OpenVLAPolicy(OpenVLAConfig(base_dir=base_dir, lora_rank=4, deploy_task="put the cube in the bowl"),
                               fit_action_normalizer(frames.actions))
        before = {k: v.clone() for k, v in policy.checkpoint_state_dict().items()}
        finetune(policy, frames, FinetuneConfig(steps=steps, batch_size=2, seed=rank))
        after = policy.checkpoint_state_dict()
        changed = max(float((after[k] - before[k]).abs().max()) for k in after)
        save_file({k: v.contiguous() for k, v in after.items()}, f"{out_dir}/rank{rank}.safetensors",
                  metadata={"changed": repr(changed)})
    finally:
        dist.destroy_process_group()


def synthetic_frames(seed: int = 0, n: int = 24, hw: tuple[int, int] = (64, 80)):
    """EpisodeFrames of random images with actions that depend on the image (mean brightness) and the task."""
    from robot_stack.policies.openvla.finetune import EpisodeFrames

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    actions = rng.normal(0.0, 0.02, (n, 7)).astype(np.float32)
    actions[:, 0] = images.mean(axis=(1, 2, 3)) / 255.0 * 0.06 - 0.03
    actions[:, 6] = rng.integers(0, 2, n)
    tasks = ["put the cube in the bowl" if i % 2 else "open the drawer" for i in range(n)]
    return EpisodeFrames(images, actions, tasks, camera="front")


def write_tiny_store(path, n_episodes: int = 2, n_steps: int = 6, hw: tuple[int, int] = (48, 64),
                     task: str = "put the cube in the bowl", seed: int = 0):
    """A real zarr trajectory store with `n_episodes` committed successful sim episodes of a front camera, state
    and ee_delta actions (images a per-episode colour plus noise; actions depend on the state). Returns its path."""
    from robot_stack.store import StoreSchema, TrajectoryStore
    from robot_stack.types import rig_features

    schema = StoreSchema(robot="wx250s", control_hz=5.0, action_space="ee_delta",
                         features=rig_features({"front": hw}, n_joints=6), cameras=("front",))
    store = TrajectoryStore.create(path, schema, fsync=False)
    try:
        for i in range(n_episodes):
            rng = np.random.default_rng([seed, i])
            ep: dict[str, np.ndarray] = {}
            for key, spec in schema.features.items():
                if spec.dtype == "uint8":
                    colour = rng.integers(0, 256, 3)
                    ep[key] = np.clip(colour + rng.integers(-20, 21, (n_steps, *spec.shape)), 0, 255).astype(np.uint8)
                elif spec.dtype == "int64":
                    ep[key] = np.arange(n_steps, dtype=np.int64) * 200_000_000
            state = rng.normal(size=(n_steps, schema.features["observation.state"].shape[0])).astype(np.float32)
            action = np.zeros((n_steps, 7), np.float32)
            action[:, :6] = 0.02 * np.tanh(state[:, :6])
            action[:, 6] = (state[:, 6] > 0).astype(np.float32)
            ep["observation.state"], ep["action"] = state, action
            store.append_episode(ep, {"task": task, "source": "sim", "success": True})
    finally:
        store.close()
    return path


def fsdp_finetune_worker(rank: int, world_size: int, base_dir: str, port: int, out_dir: str, steps: int) -> None:
    """One rank of the world-size-2 CPU/gloo FULL fine-tune under FSDP2 (tests/policies/openvla/
    test_distributed.py): ranks draw different batches; at the end each rank gathers the full weights
    (DTensor.full_tensor) and writes them to out_dir/rank{rank}.safetensors with how far they moved."""

    import torch.distributed as dist
    from safetensors.torch import save_file

    from robot_stack.policies.openvla.finetune import FinetuneConfig, finetune, fit_action_normalizer
    from robot_stack.policies.openvla.policy import OpenVLAConfig, OpenVLAPolicy

    _join_gloo_group(rank, world_size, port)
    try:
        frames = synthetic_frames(seed=7)
        policy = OpenVLAPolicy(OpenVLAConfig(base_dir=base_dir, lora_rank=0, lr=1e-3,
                                             deploy_task="put the cube in the bowl"),
                               fit_action_normalizer(frames.actions))
        before = {k: v.detach().clone() for k, v in policy.vla.state_dict().items()}
        finetune(policy, frames, FinetuneConfig(steps=steps, batch_size=2, seed=rank, strategy="fsdp"))
        # Parameters really sharded: a DTensor whose local shard holds about half the elements on this rank.
        sharded = sum(1 for p in policy.vla.parameters()
                      if hasattr(p, "to_local") and p.to_local().numel() < p.numel())
        after = {}
        for k, v in policy.vla.state_dict().items():
            full = v.full_tensor() if hasattr(v, "full_tensor") else v
            after[k] = full.detach().float().contiguous()
        changed = max(float((after[k] - before[k].float()).abs().max()) for k in after)
        save_file(after, f"{out_dir}/rank{rank}.safetensors",
                  metadata={"changed": repr(changed), "sharded": str(sharded),
                            "parameters": str(sum(1 for _ in policy.vla.parameters()))})
    finally:
        dist.destroy_process_group()
