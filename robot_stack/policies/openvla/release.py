"""The released `openvla/openvla-7b` directory, read as it is: file checks, configs, statistics, fingerprint.

    base_dir/
      config.json                      model_type "openvla", text_config (llama), timm_model_ids, image_sizes,
                                       use_fused_vision_backbone, pad_to_multiple_of, n_action_bins, norm_stats
      model.safetensors.index.json     {"weight_map": {parameter name: shard file}}   (or one model.safetensors)
      model-0000k-of-0000n.safetensors the weights, named exactly like our modules (no conversion)
      tokenizer.json                   Llama-2 SentencePiece-BPE as a `tokenizers` pipeline (what the release's
                                       LlamaTokenizerFast runs); tokenizer.model is not read
      tokenizer_config.json, special_tokens_map.json   bos/eos/pad token strings
      preprocessor_config.json         per backbone: input size, interpolation, mean/std, resize strategy
      dataset_statistics.json          action q01/q99/mask per dataset (`unnorm_key`); wins over config.json's
                                       norm_stats, as vla-scripts/deploy.py does for a local directory

Every problem is an `OpenVLADirectoryError` naming the file, the key and the fix (DESIGN.md §4.7).

Base fingerprint (`base_fingerprint`): an adapter checkpoint names the base it was trained on by this hash,
and loading refuses a base whose hash differs. Hashing every byte of 15 GB takes ~40 s even from an NVMe disk,
too slow for each adapter swap, so the default fingerprint is sha256 over:
  - config.json, model.safetensors.index.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json
    (every byte: they define the architecture, the weight names and the prompt tokens);
  - per weight shard: its name, its size in bytes, its safetensors header (every tensor's name, dtype, shape
    and byte offsets), and 16 blocks of 64 KiB of tensor data at fixed, evenly spaced offsets plus the last block.
A different release, a fine-tuned copy, another dtype or sharding, or a truncated download changes it (any
training run changes essentially every byte, so the sampled blocks differ); ~3 MB are read per 15 GB base.
It does not catch a few corrupted bytes outside the sampled blocks; `base_fingerprint(dir, full=True)` hashes
every byte for that (a different value: it is a different name space, "full:" prefixed).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_stack.policies.checkpoint import CheckpointError
from robot_stack.policies.openvla.vision import KNOWN_TIMM_VITS, ViTSpec

CONFIG_FILE = "config.json"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
STATISTICS_FILE = "dataset_statistics.json"
# Project extension for test-sized models (robot_stack_testing/tiny_openvla.py): ViT specs for timm ids the
# table in vision.py does not know. The release does not have it and never needs it.
VIT_SPECS_KEY = "robot_stack_vit_specs"

FINGERPRINT_BLOCK_BYTES = 64 * 1024
FINGERPRINT_BLOCKS_PER_SHARD = 16
_FINGERPRINTED_JSON = (CONFIG_FILE, WEIGHTS_INDEX_FILE, TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, PREPROCESSOR_FILE)

# Llama-2-7B. The release's config.json carries a sparse text_config ({"model_type", "pad_token_id",
# "torch_dtype", "vocab_size"}) and relies on transformers' LlamaConfig defaults of 2024 for the rest
# (configuration_prismatic.py builds `LlamaConfig(**text_config)`); they are written out here so a transformers
# release that changes its defaults cannot silently change the architecture.
LLAMA2_7B_TEXT_DEFAULTS: dict[str, Any] = {
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
    "initializer_range": 0.02, "vocab_size": 32000, "bos_token_id": 1, "eos_token_id": 2,
}
_TEXT_CONFIG_DROPPED = ("model_type", "torch_dtype", "dtype", "architectures", "_name_or_path", "transformers_version")


class OpenVLADirectoryError(CheckpointError):
    """The directory is not a usable OpenVLA release; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class OpenVLAArchitecture:
    """Everything needed to build the modules (shapes) and to read actions out of the vocabulary."""

    vit_specs: tuple[ViTSpec, ...]
    image_sizes_px: tuple[int, ...]
    use_fused_vision_backbone: bool
    text_config: dict[str, Any]      # complete LlamaConfig kwargs
    pad_to_multiple_of: int
    pad_token_id: int
    n_action_bins: int

    @property
    def text_vocab_size(self) -> int:
        """Rows of the embedding / lm_head (32064 in the release: 32000 + <PAD>, padded to a multiple of 64)."""
        return int(self.text_config["vocab_size"])

    @property
    def action_vocab_size(self) -> int:
        """The tokenizer's vocabulary before padding (32000); action tokens are its last n_action_bins ids.
        modeling_prismatic.py: `vocab_size = text_config.vocab_size - pad_to_multiple_of`."""
        return self.text_vocab_size - self.pad_to_multiple_of


@dataclass
class PreprocessorConfig:
    """Per backbone: square input side (px), PIL interpolation name, mean/std; one resize strategy."""

    input_sizes_px: list[int]
    interpolations: list[str]
    means: list[list[float]]
    stds: list[list[float]]
    resize_strategy: str = "resize-naive"


@dataclass
class OpenVLARelease:
    """A checked release directory: architecture, weight files, preprocessing, statistics."""

    base_dir: Path
    architecture: OpenVLAArchitecture
    weight_map: dict[str, str]               # parameter name -> shard file name
    preprocessor: PreprocessorConfig
    norm_stats: dict[str, Any]               # dataset name -> {"action": {"q01", "q99", "mask", ...}, ...}
    config: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def shard_files(self) -> list[str]:
        return sorted(set(self.weight_map.values()))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise OpenVLADirectoryError(f"{path} is missing; copy the complete openvla/openvla-7b directory (every "
                                    "file of the Hugging Face repository) to the base directory")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise OpenVLADirectoryError(f"{path} is not valid JSON ({e}); download that file again") from None


def _need(d: dict, key: str, path: Path, what: str) -> Any:
    if key not in d:
        raise OpenVLADirectoryError(f"{path} has no {key!r} ({what}); this is not an OpenVLA release config — "
                                    "point base_dir at the openvla/openvla-7b directory")
    return d[key]


def read_architecture(config: dict[str, Any], path: Path) -> OpenVLAArchitecture:
    """Architecture from a release config.json dict (`path` only names the file in errors)."""
    model_type = config.get("model_type")
    if model_type != "openvla":
        raise OpenVLADirectoryError(f"{path}: model_type is {model_type!r}, not 'openvla'; point base_dir at an "
                                    "OpenVLA release directory (openvla/openvla-7b)")
    timm_ids = list(_need(config, "timm_model_ids", path, "vision backbone ids"))
    image_sizes = [int(s) for s in _need(config, "image_sizes", path, "vision input sizes")]
    fused = bool(_need(config, "use_fused_vision_backbone", path, "one or two vision backbones"))
    overrides = config.get("timm_override_act_layers") or [None] * len(timm_ids)
    if any(o is not None for o in overrides):
        raise OpenVLADirectoryError(f"{path}: timm_override_act_layers {overrides} are not supported (only the GELU "
                                    "backbones of OpenVLA: DINOv2 + SigLIP); use the dinosiglip release")
    if len(timm_ids) != (2 if fused else 1) or len(image_sizes) != len(timm_ids):
        raise OpenVLADirectoryError(f"{path}: use_fused_vision_backbone={fused} needs {2 if fused else 1} "
                                    f"timm_model_ids and image_sizes, got {timm_ids} and {image_sizes}")
    custom = config.get(VIT_SPECS_KEY)
    if custom is not None:
        specs = [ViTSpec.from_json(s) for s in custom]
    else:
        unknown = [t for t in timm_ids if t not in KNOWN_TIMM_VITS]
        if unknown:
            raise OpenVLADirectoryError(f"{path}: timm_model_ids {unknown} are not architectures this loader knows "
                                        f"(known: {sorted(KNOWN_TIMM_VITS)}); add a ViTSpec for them in "
                                        "robot_stack/policies/openvla/vision.py")
        specs = [KNOWN_TIMM_VITS[t] for t in timm_ids]
    text = dict(_need(config, "text_config", path, "the Llama language model"))
    if text.get("model_type", "llama") != "llama":
        raise OpenVLADirectoryError(f"{path}: text_config.model_type {text.get('model_type')!r} is not 'llama'; "
                                    "only Llama-2 OpenVLA releases are supported")
    text_config = {**LLAMA2_7B_TEXT_DEFAULTS, **{k: v for k, v in text.items() if k not in _TEXT_CONFIG_DROPPED}}
    pad_multiple = int(config.get("pad_to_multiple_of", 64))
    arch = OpenVLAArchitecture(vit_specs=tuple(specs), image_sizes_px=tuple(image_sizes), use_fused_vision_backbone=fused,
                               text_config=text_config, pad_to_multiple_of=pad_multiple,
                               pad_token_id=int(config.get("pad_token_id", text_config.get("pad_token_id", 32000))),
                               n_action_bins=int(config.get("n_action_bins", 256)))
    if arch.action_vocab_size <= arch.n_action_bins:
        raise OpenVLADirectoryError(f"{path}: text_config.vocab_size {arch.text_vocab_size} - pad_to_multiple_of "
                                    f"{pad_multiple} leaves no room for {arch.n_action_bins} action tokens")
    return arch


def read_preprocessor(path: Path, n_backbones: int) -> PreprocessorConfig:
    d = _read_json(path)
    sizes = [int(s[-1]) if isinstance(s, list) else int(s) for s in _need(d, "input_sizes", path, "input sizes")]
    cfg = PreprocessorConfig(input_sizes_px=sizes, interpolations=list(d.get("interpolations") or ["bicubic"] * len(sizes)),
                             means=[list(map(float, m)) for m in _need(d, "means", path, "normalisation means")],
                             stds=[list(map(float, s)) for s in _need(d, "stds", path, "normalisation stds")],
                             resize_strategy=str(d.get("image_resize_strategy", "resize-naive")))
    lengths = {len(cfg.input_sizes_px), len(cfg.interpolations), len(cfg.means), len(cfg.stds)}
    if lengths != {n_backbones}:
        raise OpenVLADirectoryError(f"{path}: input_sizes/interpolations/means/stds must each list {n_backbones} "
                                    f"backbone(s); download preprocessor_config.json again")
    if cfg.resize_strategy not in ("resize-naive", "letterbox", "resize-crop"):
        raise OpenVLADirectoryError(f"{path}: image_resize_strategy {cfg.resize_strategy!r} is unknown "
                                    "(resize-naive | letterbox | resize-crop)")
    return cfg


def read_weight_map(base_dir: Path) -> dict[str, str]:
    """parameter name -> shard file, from the index (sharded release) or the single model.safetensors."""
    index = base_dir / WEIGHTS_INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise OpenVLADirectoryError(f"{index} has no 'weight_map'; download it again")
    elif (base_dir / SINGLE_WEIGHTS_FILE).is_file():
        from safetensors import safe_open

        with safe_open(str(base_dir / SINGLE_WEIGHTS_FILE), framework="pt") as f:
            weight_map = dict.fromkeys(f.keys(), SINGLE_WEIGHTS_FILE)
    else:
        raise OpenVLADirectoryError(f"{base_dir} has neither {WEIGHTS_INDEX_FILE} nor {SINGLE_WEIGHTS_FILE}; copy the "
                                    "weight files (model-0000k-of-0000n.safetensors + the index) into it")
    for shard in sorted(set(weight_map.values())):
        if "/" in shard or "\\" in shard or not (base_dir / shard).is_file():
            first = next(k for k, v in weight_map.items() if v == shard)
            raise OpenVLADirectoryError(f"{base_dir / shard} is missing (the index maps {first!r} and others to it); "
                                        "the download is incomplete: copy that shard into the base directory")
    return weight_map


def read_norm_stats(base_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    stats_path = base_dir / STATISTICS_FILE
    stats = _read_json(stats_path) if stats_path.is_file() else config.get("norm_stats")
    if not stats:
        raise OpenVLADirectoryError(f"{stats_path} is missing and {base_dir / CONFIG_FILE} has no norm_stats; copy "
                                    "dataset_statistics.json (written by OpenVLA's fine-tuning) into the directory")
    return stats


def read_release(base_dir: str | Path) -> OpenVLARelease:
    """Check the directory's files and parse them (weights are not read here; see modeling.load_release_weights)."""
    base = Path(base_dir)
    if not base.is_dir():
        raise OpenVLADirectoryError(f"OpenVLA base directory {base} does not exist; download openvla/openvla-7b "
                                    "(e.g. `hf download openvla/openvla-7b --local-dir DIR`) and set base_dir to it")
    config = _read_json(base / CONFIG_FILE)
    arch = read_architecture(config, base / CONFIG_FILE)
    for name in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE):
        if not (base / name).is_file():
            fix = ("create it from tokenizer.model with transformers: AutoTokenizer.from_pretrained(DIR)"
                   ".save_pretrained(DIR)" if name == TOKENIZER_FILE else "copy it from openvla/openvla-7b")
            raise OpenVLADirectoryError(f"{base / name} is missing; {fix}")
    preprocessor = read_preprocessor(base / PREPROCESSOR_FILE, len(arch.vit_specs))
    if [int(s) for s in preprocessor.input_sizes_px] != list(arch.image_sizes_px):
        raise OpenVLADirectoryError(f"{base / PREPROCESSOR_FILE}: input sizes {preprocessor.input_sizes_px} differ from "
                                    f"config.json image_sizes {list(arch.image_sizes_px)}; the files come from "
                                    "different models")
    return OpenVLARelease(base_dir=base, architecture=arch, weight_map=read_weight_map(base), preprocessor=preprocessor,
                          norm_stats=read_norm_stats(base, config), config=config)


def action_statistics(norm_stats: dict[str, Any], unnorm_key: str | None, source: str = STATISTICS_FILE) -> dict:
    """The `action` statistics of one dataset; unnorm_key is required when the model saw several datasets
    (modeling_prismatic.py `_check_unnorm_key`)."""
    if unnorm_key is None:
        if len(norm_stats) != 1:
            raise ValueError(f"the model was trained on {len(norm_stats)} datasets; set unnorm_key to the one whose "
                             f"action statistics to use, one of {sorted(norm_stats)} (Bridge: 'bridge_orig')")
        unnorm_key = next(iter(norm_stats))
    if unnorm_key not in norm_stats:
        raise ValueError(f"unnorm_key {unnorm_key!r} is not in {source}; choose one of {sorted(norm_stats)}")
    action = norm_stats[unnorm_key].get("action")
    if not isinstance(action, dict) or "q01" not in action or "q99" not in action:
        raise ValueError(f"{source}: dataset {unnorm_key!r} has no action q01/q99; regenerate the statistics")
    return action


# ---- fingerprint --------------------------------------------------------------------------------
def _safetensors_header(f) -> bytes:
    raw_len = f.read(8)
    if len(raw_len) != 8:
        raise OpenVLADirectoryError(f"{f.name} is truncated (no safetensors header); download it again")
    (n,) = struct.unpack("<Q", raw_len)
    header = f.read(n)
    if len(header) != n:
        raise OpenVLADirectoryError(f"{f.name} is truncated inside its safetensors header; download it again")
    return raw_len + header


def base_fingerprint(base_dir: str | Path, full: bool = False) -> str:
    """sha256 hex naming a base model directory (module docstring); `full` hashes every weight byte."""
    base = Path(base_dir)
    h = hashlib.sha256(b"robot_stack.openvla.base.v1" + (b".full" if full else b""))
    for name in _FINGERPRINTED_JSON:
        path = base / name
        if path.is_file():
            h.update(f"\0{name}\0".encode())
            h.update(path.read_bytes())
    for shard in sorted(set(read_weight_map(base).values())):
        path = base / shard
        size = os.path.getsize(path)
        h.update(f"\0{shard}\0{size}\0".encode())
        with open(path, "rb") as f:
            header = _safetensors_header(f)
            h.update(header)
            if full:
                for chunk in iter(lambda: f.read(1 << 24), b""):
                    h.update(chunk)
                continue
            data_start, data_len = len(header), size - len(header)
            step = max(data_len // FINGERPRINT_BLOCKS_PER_SHARD, 1)
            offsets = sorted({min(i * step, max(data_len - FINGERPRINT_BLOCK_BYTES, 0))
                              for i in range(FINGERPRINT_BLOCKS_PER_SHARD)} | {max(data_len - FINGERPRINT_BLOCK_BYTES, 0)})
            for off in offsets:
                f.seek(data_start + off)
                h.update(f.read(FINGERPRINT_BLOCK_BYTES))
    return ("full:" if full else "") + h.hexdigest()
