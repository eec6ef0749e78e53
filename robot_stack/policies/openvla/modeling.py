"""OpenVLA-7B as our own module tree (no trust_remote_code): parameter names equal the released safetensors.

    OpenVLAModel
      vision_backbone.featurizer.*        DINOv2 ViT-L/14-reg4 (vision.py, timm names)
      vision_backbone.fused_featurizer.*  SigLIP So400m/14
      projector.fc1/fc2/fc3               fused GELU MLP
      language_model.model.*              transformers LlamaForCausalLM (SDPA attention)
      language_model.lm_head.weight

    input_ids (B, L) ──embed──► [e(<s>), projector(vision(pixels)) (N rows), e(rest)] ─► Llama ─► hidden (B, 1+N+L-1, D)

The image patches go right after <s> (modeling_prismatic.py, "inserting after <BOS>"), so a prompt of L
tokens is a sequence of L + N positions (N = 256 at 224 px).

Decoding (`decode_actions`): ONE prefill of image + prompt, then the prefix's KV cache is repeated K times and
K sequences of action tokens are decoded as one batch, each step one (K, 1) forward. HF `generate` is not
used: the release's `predict_action` decodes batch index 0 only, and one forward per token with a batch of K
is exactly what drawing K samples needs. Logits can be restricted to the 256 action ids (a base that emits a
text token would otherwise decode it into an extreme bin).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policies.openvla.processor import IGNORE_INDEX, ActionTokenizer
from robot_stack.policies.openvla.release import OpenVLAArchitecture, OpenVLADirectoryError, OpenVLARelease
from robot_stack.policies.openvla.vision import PrismaticProjector, PrismaticVisionBackbone


def llama_config(arch: OpenVLAArchitecture):
    from transformers import LlamaConfig

    return LlamaConfig(**arch.text_config)


_CACHE_KWARG: str | None = None


def llama_cache_kwarg() -> str:
    """The name LlamaModel.forward takes the KV cache under, read from its signature once.

    transformers 5.25 (the `vla` extra's pin) calls it `cache` (and returns `.cache`); 5.17, which the GPU
    machines' image ships, still calls it `past_key_values`. Feature detection instead of a version check, so
    the GPU benchmark runs on whichever the machine has (benchmarks/bench_vla.py --gpu)."""
    global _CACHE_KWARG
    if _CACHE_KWARG is None:
        import inspect

        from transformers.models.llama.modeling_llama import LlamaModel

        params = inspect.signature(LlamaModel.forward).parameters
        _CACHE_KWARG = "cache" if "cache" in params else "past_key_values"
    return _CACHE_KWARG


class OpenVLAModel(nn.Module):
    """Vision backbone + projector + Llama; see the module docstring for the token layout."""

    def __init__(self, arch: OpenVLAArchitecture, dtype: torch.dtype = torch.float32):
        super().__init__()
        from transformers import LlamaForCausalLM

        self.arch = arch
        self.vision_backbone = PrismaticVisionBackbone(list(arch.vit_specs), list(arch.image_sizes_px))
        self.language_model = LlamaForCausalLM._from_config(llama_config(arch), attn_implementation="sdpa",
                                                            dtype=dtype)
        hidden = self.language_model.config.hidden_size
        self.projector = PrismaticProjector(arch.use_fused_vision_backbone, self.vision_backbone.embed_dim, hidden)
        self.to(dtype)

    @property
    def num_patches(self) -> int:
        return self.vision_backbone.num_patches

    def reset_rotary_buffers(self, device: torch.device | str) -> None:
        """The rotary inverse frequencies are non-persistent buffers (not in the safetensors); a model built on
        the meta device gets real ones here."""
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.language_model.model.rotary_emb = LlamaRotaryEmbedding(config=self.language_model.config).to(device)

    # ---- forward pieces -------------------------------------------------------------------------
    def multimodal_embeddings(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3·n, S, S), input_ids (B, L) -> (B, L + N, D) with the patches after <s>."""
        embed = self.language_model.get_input_embeddings()
        text = embed(input_ids)
        patches = self.projector(self.vision_backbone(pixel_values.to(text.dtype)))
        return torch.cat([text[:, :1], patches, text[:, 1:]], dim=1)

    def hidden_states(self, embeddings: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      cache=None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, object]:
        name = llama_cache_kwarg()
        out = self.language_model.model(inputs_embeds=embeddings, attention_mask=attention_mask,
                                        use_cache=cache is not None, position_ids=position_ids, **{name: cache})
        return out.last_hidden_state, getattr(out, name)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass (Llama decoder layers and ViT blocks) instead of storing
        them: a LoRA step at batch 16 on the 7B model then fits well inside 80 GB (README of openvla/openvla:
        batch 16 needs ~72 GB without it). Non-reentrant, so inputs need not require grad (frozen embeddings)."""
        self.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for vit in (self.vision_backbone.featurizer, self.vision_backbone.fused_featurizer):
            if vit is not None:
                vit.gradient_checkpointing = True

    def logits(self, hidden: torch.Tensor, vocab_slice: slice | None = None) -> torch.Tensor:
        """(..., D) -> (..., V) or (..., len(vocab_slice)) using only those rows of lm_head."""
        head = self.language_model.lm_head
        if vocab_slice is None:
            return head(hidden)
        return F.linear(hidden, head.weight[vocab_slice])

    def action_loss(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """OpenVLA's training loss: causal-LM cross-entropy on the labelled tokens (the 7 action tokens + </s>;
        everything else IGNORE_INDEX), mean over them as HF's LlamaForCausalLM computes it.

        input_ids/attention_mask/labels (B, L). Returns (loss, logits (M, V) at the M labelled positions, their
        target ids (M,)). lm_head runs on the labelled positions only (1/35 of the sequence)."""
        emb = self.multimodal_embeddings(pixel_values, input_ids)
        b, n = input_ids.shape[0], self.num_patches
        ones = attention_mask.new_ones(b, n)
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        full_labels = torch.cat([labels[:, :1], labels.new_full((b, n), IGNORE_INDEX), labels[:, 1:]], dim=1)
        hidden, _ = self.hidden_states(emb, attention_mask=mask)
        targets = full_labels[:, 1:]
        keep = targets != IGNORE_INDEX
        logits = self.logits(hidden[:, :-1][keep]).float()
        target_ids = targets[keep]
        return F.cross_entropy(logits, target_ids), logits, target_ids


@dataclass
class DecodeResult:
    token_ids: torch.Tensor          # (K, n_tokens) int64
    prefix_len: int                  # positions in the prefill (prompt tokens + image patches)


@torch.no_grad()
def decode_actions(model: OpenVLAModel, pixel_values: torch.Tensor, prompt_ids: torch.Tensor, n_tokens: int,
                   k: int, action_tokenizer: ActionTokenizer, temperature: float = 0.0, top_p: float = 1.0,
                   restrict_to_actions: bool = True, generator: torch.Generator | None = None) -> DecodeResult:
    """One prefill, then K sequences of `n_tokens` decoded as one batch sharing the prefix's KV cache.

    pixel_values (1, 3·n, S, S), prompt_ids (1, L). temperature 0 = greedy (K identical rows). Returns ids (K, n).
    """
    from transformers.cache_utils import DynamicCache

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vocab = slice(action_tokenizer.first_action_id, action_tokenizer.vocab_size) if restrict_to_actions else None
    offset = action_tokenizer.first_action_id if restrict_to_actions else 0
    cache = DynamicCache(config=model.language_model.config)
    emb = model.multimodal_embeddings(pixel_values, prompt_ids)
    prefix_len = emb.shape[1]
    hidden, cache = model.hidden_states(emb, cache=cache)
    logits = model.logits(hidden[:, -1], vocab).float().expand(k, -1)
    if k > 1:
        cache.batch_repeat_interleave(k)
    embed = model.language_model.get_input_embeddings()
    chosen = []
    for step in range(n_tokens):
        token = _choose(logits, temperature, top_p, generator) + offset
        chosen.append(token)
        if step == n_tokens - 1:
            break
        position = torch.full((k, 1), prefix_len + step, dtype=torch.long, device=token.device)
        hidden, cache = model.hidden_states(embed(token[:, None]), cache=cache, position_ids=position)
        logits = model.logits(hidden[:, -1], vocab).float()
    return DecodeResult(torch.stack(chosen, dim=1), prefix_len)


def _choose(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """(K, V) -> (K,) ids: argmax at temperature 0, else nucleus sampling (the smallest set of ids whose
    probability mass reaches top_p, renormalised)."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(dim=-1) - sorted_p >= top_p   # mass before this id already reaches top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ---- weights ------------------------------------------------------------------------------------
def build_empty_model(arch: OpenVLAArchitecture, dtype: torch.dtype) -> OpenVLAModel:
    """The module tree on the meta device (no memory, no init): shapes and names only."""
    with torch.device("meta"):
        return OpenVLAModel(arch, dtype=dtype)


def expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_release_weights(release: OpenVLARelease, expected: dict[str, tuple[int, ...]]) -> None:
    """Compare every tensor name and shape in the shards' headers with the module tree; raise naming the key."""
    from safetensors import safe_open

    found: dict[str, tuple[str, tuple[int, ...]]] = {}
    for shard in release.shard_files:
        path = release.base_dir / shard
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                    found[key] = (shard, tuple(f.get_slice(key).get_shape()))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for corrupt files
            raise OpenVLADirectoryError(f"{path} is not a readable safetensors file ({e}); download it again") from None
    index_name = "model.safetensors.index.json"
    for key, shard in release.weight_map.items():
        if key in found and found[key][0] != shard:
            raise OpenVLADirectoryError(f"{release.base_dir / index_name}: maps {key!r} to {shard} but it is in "
                                        f"{found[key][0]}; download the index again")
    missing = sorted(set(expected) - set(found))
    if missing:
        shard = release.weight_map.get(missing[0], "any shard")
        raise OpenVLADirectoryError(
            f"{release.base_dir}: parameter {missing[0]!r} is missing from the weights ({shard}; {len(missing)} "
            "missing in all); the shards are incomplete or belong to another architecture: download "
            "openvla/openvla-7b again")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise OpenVLADirectoryError(
            f"{release.base_dir / found[unexpected[0]][0]}: unexpected parameter {unexpected[0]!r} ({len(unexpected)} "
            "in all) that the OpenVLA architecture in config.json does not have; config.json and the weights "
            "come from different models")
    for key, shape in expected.items():
        if found[key][1] != shape:
            raise OpenVLADirectoryError(
                f"{release.base_dir / found[key][0]}: parameter {key!r} has shape {list(found[key][1])}, the "
                f"architecture in config.json needs {list(shape)}; config.json and the weights come from different "
                "models")


def load_release_state(release: OpenVLARelease, device: torch.device | str, dtype: torch.dtype
                       ) -> dict[str, torch.Tensor]:
    """Every weight of the release, checked against the architecture, as `dtype` tensors on `device`."""
    from safetensors import safe_open

    expected = expected_shapes(build_empty_model(release.architecture, dtype))
    check_release_weights(release, expected)
    state: dict[str, torch.Tensor] = {}
    # safetensors reads straight onto the target device (a GPU base never passes through host memory as fp32).
    target = str(device) if str(device) != "cpu" else "cpu"
    for shard in release.shard_files:
        with safe_open(str(release.base_dir / shard), framework="pt", device=target) as f:
            for key in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                state[key] = f.get_tensor(key).to(dtype)
    return state


def model_from_state(arch: OpenVLAArchitecture, state: dict[str, torch.Tensor], device: torch.device | str,
                     dtype: torch.dtype) -> OpenVLAModel:
    """A module tree whose parameters ARE the given tensors (no copy: several adapters share one base)."""
    model = build_empty_model(arch, dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.reset_rotary_buffers(device)
    model.requires_grad_(False)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:
        raise RuntimeError(f"OpenVLA tensors left without data after loading: {left_on_meta[:5]}")
    return model.eval()
