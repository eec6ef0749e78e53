"""The vision-language success classifier: a local Hugging Face SigLIP/CLIP checkpoint plus a small trained head.

    uint8 (B, H, W, 3) ─► the base's own preprocessor_config.json (resize [+ centre crop], rescale, mean/std)
        ─► vision tower (frozen; optional LoRA on its encoder's linear layers) ─► image embedding e (B, D)
    task language ─► text tower, once per task at build time ─► t (n_tasks, D), unit length
    logit = w · cos(e, t[task]) + b                           the base's zero-shot image-text match
          + MLP(FiLM(LayerNorm(e) W, task_embedding[task]))   the trained correction, zero at init

`w, b` start at SigLIP's own exp(logit_scale), logit_bias, so an untrained classifier is SigLIP's zero-shot
"does this image match the instruction" probability; CLIP has no calibrated single-pair probability (its softmax
runs over candidate texts), so there they start at 0 and are learned. The FiLM conditioning starts from t and is
trained (like the CNN's task embedding): the base's text embeddings of "put the cube in the bowl" and "take the
cube out of the bowl" are close, while the answers to them for the same frame are opposite.

Checkpoint: only the head (and the LoRA adapter, when lora_rank > 0); config.json names the base directory and
its fingerprint (`base_fingerprint`), and loading refuses a base whose fingerprint differs. Nothing downloads
(local_files_only), no remote code runs, weights load from safetensors only (never a pickle).

Base fingerprint: sha256 over the bytes of config.json, the processor and tokenizer files
(`_FINGERPRINTED_FILES`, those present) and model.safetensors.index.json; then per weight file its name, its size
and its safetensors header (every tensor's name, dtype, shape, offsets), and `_SAMPLED_BLOCKS` blocks of 64 KiB of
tensor data at evenly spaced offsets plus the last block. Reading ~1 MB per shard keeps it cheap for a multi-GB
base, while another release, a fine-tuned copy (training changes essentially every byte), another dtype or a
truncated download changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.practice.classifier.base import CLASSIFIERS, ClassifierError, SuccessClassifier

SUPPORTED_MODEL_TYPES = ("siglip", "clip")
_FINGERPRINTED_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "spiece.model", "vocab.json", "merges.txt",
                        "model.safetensors.index.json")
_SAMPLED_BLOCKS, _BLOCK_BYTES = 8, 1 << 16
_ENCODE_BATCH = 64           # frames per vision-tower call when caching embeddings (bounds activation memory)


@dataclass
class VLMClassifierConfig:
    pretrained_dir: str = ""       # a local SigLIP/CLIP directory in the HF layout (config.json, model.safetensors, ...)
    camera: str = "front"
    threshold: float = 0.5
    hidden_dim: int = 256
    # The vision tower's patch tokens, average-pooled to token_grid × token_grid, enter the head beside the pooled
    # embedding: success is often small and local (a cube inside a bowl), which a global summary can wash out.
    # 0: the pooled embedding only.
    token_grid: int = 4
    lora_rank: int = 0             # 0: the base stays frozen and only the head trains
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.lora_targets = tuple(str(t) for t in self.lora_targets)
        if not self.pretrained_dir:
            raise ValueError("vlm classifier: set pretrained_dir to a local SigLIP or CLIP directory (HF layout; "
                             "nothing is downloaded: copy the model there first)")
        if self.lora_rank < 0 or self.hidden_dim < 1 or self.token_grid < 0:
            raise ValueError(f"vlm classifier: lora_rank >= 0, hidden_dim >= 1 and token_grid >= 0, got "
                             f"{self.lora_rank}, {self.hidden_dim}, {self.token_grid}")
        if self.lora_rank and not self.lora_targets:
            raise ValueError("vlm classifier: lora_rank > 0 needs at least one name in lora_targets")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"vlm classifier: threshold must be in (0, 1), got {self.threshold}")


def _weight_files(base: Path) -> list[str]:
    index = base / "model.safetensors.index.json"
    if index.is_file():
        try:
            return sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ClassifierError(f"{index} is malformed ({e}); copy the base model directory again") from None
    if (base / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise ClassifierError(f"{base / 'model.safetensors'} is missing (and there is no model.safetensors.index.json): "
                          f"{base} is not a Hugging Face checkpoint with safetensors weights (pytorch_model.bin is "
                          "never loaded: convert it with save_pretrained(..., safe_serialization=True))")


def base_fingerprint(base_dir: str | Path) -> str:
    """sha256 hex naming a base model directory (the module docstring says what it covers)."""
    base = Path(base_dir)
    h = hashlib.sha256(b"robot_stack.classifier.vlm.base.v1")
    for name in _FINGERPRINTED_FILES:
        if (base / name).is_file():
            h.update(f"\0{name}\0".encode())
            h.update((base / name).read_bytes())
    for name in _weight_files(base):
        path = base / name
        if not path.is_file():
            raise ClassifierError(f"{path} is missing (named by model.safetensors.index.json); copy the whole base "
                                  "model directory again")
        size = path.stat().st_size
        h.update(f"\0{name}\0{size}\0".encode())
        with open(path, "rb") as f:
            raw_len = f.read(8)
            (n,) = struct.unpack("<Q", raw_len) if len(raw_len) == 8 else (size,)
            header = f.read(n)
            if len(raw_len) != 8 or len(header) != n:
                raise ClassifierError(f"{path} is truncated (no complete safetensors header); copy it again")
            h.update(header)
            start, length = 8 + n, size - 8 - n
            last = max(length - _BLOCK_BYTES, 0)
            step = max(length // _SAMPLED_BLOCKS, 1)
            for offset in sorted({min(i * step, last) for i in range(_SAMPLED_BLOCKS)} | {last}):
                f.seek(start + offset)
                h.update(f.read(_BLOCK_BYTES))
    return h.hexdigest()


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ClassifierError(f"{path} is missing: {path.parent} is not a complete Hugging Face image-text checkpoint "
                              "(it needs config.json, model.safetensors, preprocessor_config.json and the tokenizer "
                              "files; save_pretrained writes them)")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ClassifierError(f"{path} is not valid JSON ({e}); copy the base model directory again") from None


@CLASSIFIERS.register("vlm")
class VLMClassifier(SuccessClassifier):
    backend = "vlm"
    config_class = VLMClassifierConfig

    def __init__(self, config: VLMClassifierConfig, tasks: Sequence[str]):
        super().__init__(config, tasks)
        base = Path(config.pretrained_dir).expanduser()
        if not base.is_dir():
            raise ClassifierError(f"vlm classifier: pretrained_dir {base} is not a directory; copy the SigLIP/CLIP "
                                  "checkpoint there (nothing is downloaded) or point pretrained_dir at it (a saved "
                                  "classifier: load_classifier(path, overrides={'pretrained_dir': ...}), or "
                                  "practice.judge_base_dir=...)")
        model_type = _read_json(base / "config.json").get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ClassifierError(f"{base / 'config.json'}: model_type {model_type!r} is not one of "
                                  f"{list(SUPPORTED_MODEL_TYPES)}; use a SigLIP or CLIP dual-encoder checkpoint")
        self.model_type = model_type
        self.fingerprint = base_fingerprint(base)
        self._setup_preprocessing(_read_json(base / "preprocessor_config.json"), base)
        model = self._load_base(base)
        text = self._task_text_embeddings(model, base)                         # (n_tasks, D), unit length
        self.vision_model = model.vision_model
        # CLIP projects the pooled vision output into the joint space; SigLIP's pooler output already lives there.
        self.visual_projection = getattr(model, "visual_projection", None)
        scale = float(model.logit_scale.detach().exp())
        del model                                                              # the text tower is not needed again
        for p in self.parameters():
            p.requires_grad_(False)
        if config.lora_rank:
            self._add_lora()
        self.register_buffer("task_text", text, persistent=False)  # rebuilt from the base, which the hash pins
        dim, width = text.shape[1], int(self.vision_model.config.hidden_size)
        self.embedding_dim, self.token_width = dim, width
        self.zero_shot_weight = nn.Parameter(torch.tensor(scale))
        self.zero_shot_bias = nn.Parameter(torch.tensor(0.0))
        self.task_embedding = nn.Parameter(text.clone())
        self.image_norm = nn.LayerNorm(dim)
        self.image_in = nn.Linear(dim, config.hidden_dim)
        if config.token_grid:
            self.token_norm = nn.LayerNorm(width)
            self.tokens_in = nn.Linear(config.token_grid ** 2 * width, config.hidden_dim)
        self.film = nn.Linear(dim, 2 * config.hidden_dim)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)   # identity at init: γ = 1 + 0, β = 0
        self.out = nn.Linear(config.hidden_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)    # the untrained classifier is the base's zero-shot match (module docstring)
        self.to(config.device)

    # ------------------------------------------------------------------ building
    def _load_base(self, base: Path):
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(base, local_files_only=True, use_safetensors=True,
                                              dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise ClassifierError(f"could not load the base model from {base}: {e}; it needs config.json and "
                                  "model.safetensors (or an index and its shards) written by save_pretrained") from None
        return model.eval()

    def _task_text_embeddings(self, model, base: Path) -> torch.Tensor:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        except (OSError, ValueError, ImportError) as e:
            raise ClassifierError(f"could not load the tokenizer of {base}: {e}; the directory needs tokenizer.json "
                                  "(or the files its tokenizer_config.json names, e.g. spiece.model with the "
                                  "sentencepiece package installed)") from None
        if self.model_type == "siglip":
            # SigLIP was trained on texts padded to its full context and pools the last position: pad the same way.
            batch = tokenizer(list(self.tasks), padding="max_length", truncation=True, return_tensors="pt",
                              max_length=int(model.config.text_config.max_position_embeddings))
        else:
            batch = tokenizer(list(self.tasks), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
        text = out.pooler_output if hasattr(out, "pooler_output") else out
        return F.normalize(text.float(), dim=-1)

    def _setup_preprocessing(self, proc: dict, base: Path) -> None:
        """The base's image processor as arithmetic: the same resize, crop, rescale and mean/std, batched in torch."""
        size = proc.get("size") or {}
        if "height" in size and "width" in size:
            self._resize = ("exact", (int(size["height"]), int(size["width"])))
        elif "shortest_edge" in size:
            self._resize = ("shortest_edge", int(size["shortest_edge"]))
        else:
            raise ClassifierError(f"{base / 'preprocessor_config.json'}: size {size!r} has neither height/width nor "
                                  "shortest_edge; write the base's image processor with save_pretrained")
        crop = proc.get("crop_size") or {}
        self._crop = (int(crop["height"]), int(crop["width"])) if proc.get("do_center_crop") and crop else None
        # PIL codes: 2 = bilinear, 3 = bicubic (SigLIP and CLIP both ship 2 or 3)
        self._interpolation = "bicubic" if int(proc.get("resample", 2)) == 3 else "bilinear"
        self._rescale = float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 1.0
        normalize = proc.get("do_normalize", True)
        self._mean = torch.tensor(proc.get("image_mean", [0.0] * 3) if normalize else [0.0] * 3).view(1, 3, 1, 1)
        self._std = torch.tensor(proc.get("image_std", [1.0] * 3) if normalize else [1.0] * 3).view(1, 3, 1, 1)

    def _add_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        c = self.config
        # Only the encoder blocks' own linear layers: SigLIP's pooling head is an nn.MultiheadAttention, which
        # reads its out_proj weight directly, so an adapter there would never run.
        pattern = rf".*encoder\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(c.lora_targets)})"
        lora = LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout, target_modules=pattern)
        try:
            inject_adapter_in_model(lora, self.vision_model)
        except ValueError as e:
            raise ClassifierError(f"vlm classifier: LoRA targets {list(c.lora_targets)} match no linear layer of "
                                  f"the vision tower ({e}); name some of q_proj, k_proj, v_proj, out_proj, fc1, fc2"
                                  ) from None
        for name, p in self.vision_model.named_parameters():
            p.requires_grad_("lora_" in name)

    # ------------------------------------------------------------------ forward
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        kind, size = self._resize
        if kind == "shortest_edge":
            h, w = x.shape[-2:]
            size = (size, max(round(w * size / h), 1)) if h <= w else (max(round(h * size / w), 1), size)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode=self._interpolation, align_corners=False, antialias=True)
            x = x.clamp(0.0, 255.0)  # bicubic overshoots; the HF processor resizes uint8 images, which clip
        if self._crop is not None:
            (h, w), (ch, cw) = x.shape[-2:], self._crop
            top, left = max((h - ch) // 2, 0), max((w - cw) // 2, 0)
            x = x[..., top:top + ch, left:left + cw]
        x = (x * self._rescale - self._mean) / self._std
        return x.to(self.config.device)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels float (B, 3, h, w) from preprocess() -> (B, D + token_grid² · W): the base's image embedding (D)
        and its patch tokens average-pooled to token_grid × token_grid (each of the tower's width W), flattened."""
        out = self.vision_model(pixel_values=pixels)
        pooled = out.pooler_output
        embedding = self.visual_projection(pooled) if self.visual_projection is not None else pooled
        grid = self.config.token_grid
        if not grid:
            return embedding
        tokens = out.last_hidden_state
        side = int(round(tokens.shape[1] ** 0.5))
        tokens = tokens[:, -side * side:]            # CLIP's first token is its class token, not a patch
        b, n, w = tokens.shape
        tokens = F.adaptive_avg_pool2d(tokens.transpose(1, 2).reshape(b, w, side, side), grid)
        return torch.cat([embedding, tokens.flatten(2).transpose(1, 2).flatten(1)], dim=1)

    def encode_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) -> image_features (N, F) when the vision tower is frozen (training then runs the head only);
        the pixels themselves when LoRA trains the tower."""
        if self.config.lora_rank:
            return images
        with torch.no_grad():
            return torch.cat([self.image_features(images[i:i + _ENCODE_BATCH])
                              for i in range(0, images.shape[0], _ENCODE_BATCH)])

    def logits(self, images: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
        """images (B, 3, h, w) from preprocess(), or (B, F) features from encode_frozen(); task_index (B,) -> (B,)."""
        features = images if images.dim() == 2 else self.image_features(images)
        task_index = task_index.to(features.device)
        emb = features[:, :self.embedding_dim]
        cosine = (F.normalize(emb, dim=-1) * self.task_text[task_index]).sum(-1)
        h = self.image_in(self.image_norm(emb))
        if self.config.token_grid:
            tokens = features[:, self.embedding_dim:].reshape(features.shape[0], -1, self.token_width)
            h = h + self.tokens_in(self.token_norm(tokens).flatten(1))
        gamma, beta = self.film(self.task_embedding[task_index]).chunk(2, dim=-1)
        h = F.relu(h * (1 + gamma) + beta)
        return self.zero_shot_weight * cosine + self.zero_shot_bias + self.out(h).squeeze(-1)

    # ------------------------------------------------------------------ checkpoint
    def may_lack(self, key: str) -> bool:
        return key.startswith(("vision_model.", "visual_projection.")) and "lora_" not in key

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The head and the LoRA adapter; the base's own weights stay in its directory."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not self.may_lack(k)}

    def extra_config(self) -> dict:
        return {"base": {"fingerprint": self.fingerprint, "model_type": self.model_type,
                         "dir": os.fspath(self.config.pretrained_dir)}}

    def restore_extra(self, saved: dict) -> None:
        want = (saved.get("base") or {}).get("fingerprint")
        if want != self.fingerprint:
            raise ClassifierError(
                f"this vlm classifier was trained on a base with fingerprint {want}, but {self.config.pretrained_dir} "
                f"has {self.fingerprint}: its head and adapter only fit the base they were trained on. Point "
                "pretrained_dir at that base (load_classifier(path, overrides={'pretrained_dir': ...})) or retrain the "
                "classifier on this one")
