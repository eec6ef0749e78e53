"""Task-language encoders: `TextEncoderConfig` (registered by name) + `TextEncoder.encode(texts) -> (N, D)`.

    task strings ─► TextEncoder.encode ─► (N, D) float32 ─► the policy's `task_embeddings` buffer (saved with the
    weights, so inference never needs the text model) ─► FiLM per ResNet block + MLP input (V-GPS style)

- `hashing`: built-in, dependency-free signed feature hashing of lower-cased words and word bigrams, L2-normalised.
  Deterministic across processes (sha1, not Python's salted `hash`). For tests and small task sets.
- `hf_local`: a LOCAL Hugging Face checkpoint directory (nothing is downloaded). With `transformers` installed and a
  full model directory (config.json) it runs AutoTokenizer + AutoModel and mean-pools the last hidden state over the
  attention mask. Without either, it reads
  the input word-embedding table from the directory's `model.safetensors` and the vocabulary from `vocab.txt`
  (WordPiece, BERT-style) or `tokenizer.json` (`model.vocab`) and mean-pools the static token embeddings — a weaker
  but dependency-free fallback that is logged as such.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from robot_stack.policies.base import dataclass_from_dict
from robot_stack.registry import Registry

log = logging.getLogger(__name__)

TEXT_ENCODERS: Registry[type[TextEncoder]] = Registry("text encoder")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class TextEncoderConfig:
    name: str = "hashing"
    dim: int = 64                 # hashing: output size; hf_local: ignored (the model's hidden size)
    path: str | None = None       # hf_local: the local checkpoint directory

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextEncoderConfig:
        return dataclass_from_dict(cls, d)


class TextEncoder(abc.ABC):
    name: ClassVar[str]

    def __init__(self, config: TextEncoderConfig):
        self.config = config

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """D, the embedding size."""

    @abc.abstractmethod
    def encode(self, texts: list[str]) -> torch.Tensor:
        """N strings -> (N, D) float32 CPU tensor."""


def make_text_encoder(config: TextEncoderConfig | dict[str, Any]) -> TextEncoder:
    cfg = TextEncoderConfig.from_dict(config) if isinstance(config, dict) else config
    return TEXT_ENCODERS.get(cfg.name)(cfg)


@TEXT_ENCODERS.register("hashing")
class HashingTextEncoder(TextEncoder):
    name = "hashing"

    @property
    def dim(self) -> int:
        return self.config.dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.sha1(feat.encode()).digest()[:8], "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0   # signed hashing: collisions cancel on average
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return torch.from_numpy(out)


@TEXT_ENCODERS.register("hf_local")
class LocalHFTextEncoder(TextEncoder):
    name = "hf_local"

    def __init__(self, config: TextEncoderConfig):
        super().__init__(config)
        if not config.path or not Path(config.path).is_dir():
            raise FileNotFoundError(f"text encoder hf_local needs path= a local HF checkpoint directory; got "
                                    f"{config.path!r} (nothing is downloaded: copy the model there first)")
        self.dir = Path(config.path)
        try:
            import transformers  # noqa: F401
            why_static = None if (self.dir / "config.json").is_file() else "it has no config.json (not a full model)"
        except ImportError:
            why_static = "transformers is not installed"
        if why_static is None:
            self._backend = "transformers"
            self._load_transformers()
        else:
            self._backend = "static"
            log.warning("%s: %s is used as a static word-embedding bag (mean of input token embeddings), not the "
                        "full model", why_static, self.dir)
            self._load_static()

    def _load_transformers(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.dir, local_files_only=True).eval()
        self._dim = int(self.model.config.hidden_size)

    def _load_static(self) -> None:
        from safetensors.torch import load_file

        weights = load_file(str(self.dir / "model.safetensors"))
        keys = [k for k in weights if k.endswith("word_embeddings.weight") or k.endswith("embed_tokens.weight")
                or k.endswith("shared.weight")]
        if not keys:
            raise ValueError(f"{self.dir / 'model.safetensors'} has no input word-embedding table "
                             "(*word_embeddings.weight / *embed_tokens.weight / shared.weight)")
        self.table = weights[sorted(keys)[0]].float()
        if (self.dir / "vocab.txt").is_file():
            tokens = (self.dir / "vocab.txt").read_text().splitlines()
            self.vocab = {t: i for i, t in enumerate(tokens)}
        elif (self.dir / "tokenizer.json").is_file():
            self.vocab = dict(json.loads((self.dir / "tokenizer.json").read_text())["model"]["vocab"])
        else:
            raise FileNotFoundError(f"{self.dir} has neither vocab.txt nor tokenizer.json")
        self._dim = int(self.table.shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece (BERT), unknown pieces dropped."""
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return ids
            start = end
        return ids

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        if self._backend == "transformers":
            tok = self.tokenizer(list(texts), padding=True, return_tensors="pt")
            hidden = self.model(**tok).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).float()
            return ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)).float()
        rows = []
        for text in texts:
            ids = [i for w in _WORD.findall(text.lower()) for i in self._wordpiece(w) if i < len(self.table)]
            rows.append(self.table[ids].mean(0) if ids else torch.zeros(self._dim))
        return torch.stack(rows)
