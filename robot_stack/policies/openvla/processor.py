"""OpenVLA's inputs and outputs: the prompt, its tokens, the 224 px image tensor, and the 256-bin action tokens.

    instruction ─► "In: What action should the robot take to {instruction.lower()}?\\nOut:" ─► tokenizer.json
                   ─► [<s>, ..., "Out", ":"] + "▁" (29871 in Llama-2) when the prompt does not end with it
    image uint8 (H, W, 3) ─► per backbone: PIL bicubic resize to 224 ─► /255 ─► (x - mean) / std ─► (3·n, 224, 224)
    normalised action (7,) in [-1, 1] ◄─► token ids: id = V - digitize(a, linspace(-1, 1, 256)), V = 32000

References (followed, not copied): prismatic/vla/action_tokenizer.py (bins, the "last 256 ids" rule and the
clip(V - id - 1, 0, 254) decode), prismatic/extern/hf/modeling_prismatic.py `predict_action` (the 29871 token),
prismatic/extern/hf/processing_prismatic.py (timm transform: Resize(bicubic, antialias) -> CenterCrop (a no-op at
crop_pct 1) -> ToTensor -> Normalize, channel-stacked per backbone), vla-scripts/deploy.py `get_openvla_prompt`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robot_stack.policies.openvla.release import (
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    OpenVLADirectoryError,
    PreprocessorConfig,
)

IGNORE_INDEX = -100           # torch CrossEntropyLoss's default ignore_index, as OpenVLA's labels use
EMPTY_PIECE = "\u2581"        # SentencePiece's "▁": id 29871 in Llama-2, appended after "Out:" at inference
_PIL_INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                      "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def openvla_prompt(instruction: str) -> str:
    """The exact OpenVLA-7B prompt (vla-scripts/deploy.py; PurePromptBuilder without the trailing space)."""
    return f"In: What action should the robot take to {instruction.lower()}?\nOut:"


class ActionTokenizer:
    """Uniform bins over [-1, 1] mapped onto the last `n_bins` ids of a `vocab_size` vocabulary.

    encode: (..., A) normalised actions -> (..., A) int64 ids in [vocab_size - n_bins, vocab_size - 1]
    decode: (..., A) ids -> (..., A) bin centres (float64); ids outside the action range clip to the end bins
    """

    def __init__(self, vocab_size: int, n_bins: int = 256):
        if vocab_size <= n_bins:
            raise ValueError(f"vocabulary of {vocab_size} ids cannot hold {n_bins} action bins")
        self.vocab_size, self.n_bins = int(vocab_size), int(n_bins)
        self.bins = np.linspace(-1.0, 1.0, self.n_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def first_action_id(self) -> int:
        return self.vocab_size - self.n_bins

    @property
    def action_token_begin_idx(self) -> int:
        """OpenVLA's threshold: a label is an action token iff label > this (vocab_size - (n_bins + 1))."""
        return self.vocab_size - (self.n_bins + 1)

    @property
    def half_bin_width(self) -> float:
        return float(self.bins[1] - self.bins[0]) / 2.0

    def encode(self, normalized: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)
        return (self.vocab_size - np.digitize(a, self.bins)).astype(np.int64)

    def decode(self, token_ids: np.ndarray | torch.Tensor) -> np.ndarray:
        ids = np.asarray(token_ids.cpu() if isinstance(token_ids, torch.Tensor) else token_ids, dtype=np.int64)
        idx = np.clip(self.vocab_size - ids - 1, 0, self.bin_centers.shape[0] - 1)
        return self.bin_centers[idx]

    def decode_torch(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Same as decode, on the ids' device: (...,) int64 -> (...,) float32."""
        centers = torch.as_tensor(self.bin_centers, dtype=torch.float32, device=token_ids.device)
        return centers[(self.vocab_size - token_ids - 1).clamp(0, centers.shape[0] - 1)]


def _token_string(value) -> str | None:
    """tokenizer_config.json stores special tokens as strings or as {"content": ...} dicts."""
    if isinstance(value, dict):
        return value.get("content")
    return value


class PromptTokenizer:
    """The release's tokenizer.json run by the `tokenizers` library (exactly what LlamaTokenizerFast runs),
    plus the special ids the policy needs."""

    def __init__(self, base_dir: Path, pad_token_id: int, action_vocab_size: int):
        from tokenizers import Tokenizer

        path = Path(base_dir) / TOKENIZER_FILE
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - the library raises plain Exceptions for malformed files
            raise OpenVLADirectoryError(f"{path} cannot be read by tokenizers ({e}); download it again") from None
        special = json.loads((Path(base_dir) / TOKENIZER_CONFIG_FILE).read_text())
        self.bos_id = self._id(_token_string(special.get("bos_token")) or "<s>", path)
        self.eos_id = self._id(_token_string(special.get("eos_token")) or "</s>", path)
        self.empty_piece_id = self._id(EMPTY_PIECE, path)
        self.pad_id = int(pad_token_id)
        base_vocab = self.tokenizer.get_vocab_size(with_added_tokens=False)
        if base_vocab != action_vocab_size:
            raise OpenVLADirectoryError(
                f"{path}: the tokenizer has {base_vocab} base tokens but config.json implies {action_vocab_size} "
                "(text_config.vocab_size - pad_to_multiple_of); the action ids would be wrong: tokenizer and "
                "config come from different models")

    def _id(self, token: str, path: Path) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise OpenVLADirectoryError(f"{path} has no token {token!r}; it is not a Llama tokenizer")
        return int(token_id)

    def prompt_ids(self, instruction: str) -> list[int]:
        """<s> + the prompt's tokens + "▁" when absent (modeling_prismatic.py predict_action: training saw
        "Out: " tokenised as [..., ":", "▁"] before the action tokens)."""
        ids = self.tokenizer.encode(openvla_prompt(instruction), add_special_tokens=True).ids
        if not ids or ids[0] != self.bos_id:
            ids = [self.bos_id, *ids]
        if ids[-1] != self.empty_piece_id:
            ids.append(self.empty_piece_id)
        return ids


class ImagePreprocessor:
    """uint8 (H, W, 3) RGB -> float32 (3 · n_backbones, S, S), as processing_prismatic.py with crop_pct 1."""

    def __init__(self, cfg: PreprocessorConfig):
        self.cfg = cfg

    def _resize(self, img: Image.Image, size_px: int, interpolation: str) -> Image.Image:
        resample = _PIL_INTERPOLATION.get(interpolation)
        if resample is None:
            raise ValueError(f"interpolation {interpolation!r} unknown; known {sorted(_PIL_INTERPOLATION)}")
        strategy = self.cfg.resize_strategy
        if strategy == "letterbox":  # pad to square with the mean colour, then resize
            w, h = img.size
            side = max(w, h)
            fill = tuple(int(m * 255) for m in self.cfg.means[0])
            canvas = Image.new("RGB", (side, side), fill)
            canvas.paste(img, ((side - w) // 2, (side - h) // 2))
            img = canvas
        elif strategy == "resize-crop":  # shorter side to size, then centre crop
            w, h = img.size
            scale = size_px / min(w, h)
            img = img.resize((max(size_px, round(w * scale)), max(size_px, round(h * scale))), resample)
            w, h = img.size
            left, top = (w - size_px) // 2, (h - size_px) // 2
            return img.crop((left, top, left + size_px, top + size_px))
        if img.size == (size_px, size_px):
            return img
        return img.resize((size_px, size_px), resample)

    def __call__(self, image: np.ndarray, crop_fraction: tuple[float, float, float] | None = None,
                 color_jitter=None) -> torch.Tensor:
        """crop_fraction (scale_side, x0, y0): crop a square of `scale_side` of the image side at relative corner
        (x0, y0) before resizing (finetune.py's 90 %-area random crop; (√0.9, 0.5, 0.5) is the test-time center
        crop). color_jitter: an augment.ColorJitter applied to each backbone's resized [0, 1] image before
        normalising (the same draw for both)."""
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"OpenVLA takes uint8 (H, W, 3) RGB images, got {arr.dtype} {arr.shape}")
        img = Image.fromarray(arr)
        if crop_fraction is not None:
            side, x0, y0 = crop_fraction
            w, h = img.size
            cw, ch = max(1, round(w * side)), max(1, round(h * side))
            left, top = round((w - cw) * x0), round((h - ch) * y0)
            img = img.crop((left, top, left + cw, top + ch))
        out = []
        for size, interp, mean, std in zip(self.cfg.input_sizes_px, self.cfg.interpolations, self.cfg.means,
                                           self.cfg.stds, strict=True):
            x = np.asarray(self._resize(img, size, interp), dtype=np.float32) / 255.0
            if color_jitter is not None:
                x = color_jitter.apply(torch.from_numpy(x.transpose(2, 0, 1).copy())).numpy().transpose(1, 2, 0)
            x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
            out.append(torch.from_numpy(x.transpose(2, 0, 1).copy()))
        return torch.cat(out, dim=0)
