"""The fused DINOv2 + SigLIP vision backbone and the projector of OpenVLA, in plain torch with timm's names.

    pixel_values (B, 6, 224, 224) ─split─► (B, 3, ..) DINOv2 ViT-L/14 + 4 registers ─► second-to-last block ─┐
                                      └─► (B, 3, ..) SigLIP So400m/14 ────────────► second-to-last block ─┤
                                                        drop the prefix (cls/register) tokens, concat features
                                                                    ▼
                         (B, 256, 1024 + 1152) ─► projector fc1 ─GELU─► fc2 ─GELU─► fc3 ─► (B, 256, D_llm)

Why plain torch instead of timm or transformers' Dinov2Model/SiglipVisionModel: the released
`openvla/openvla-7b` safetensors name the vision weights after timm 0.9.10's `VisionTransformer`
(`vision_backbone.featurizer.blocks.N.attn.qkv.weight`, one fused qkv), which transformers' vision models do
not (separate q/k/v under other names), and timm pulls a CUDA torchvision that breaks peft. The modules below
reproduce timm 0.9.10's `VisionTransformer`, `Block`, `Attention`, `Mlp` and `AttentionPoolLatent`
(timm/models/vision_transformer.py, timm/layers/attention_pool.py at tag v0.9.10) parameter for parameter, so
the release loads without any key conversion. Two details of the release (prismatic/extern/hf/
modeling_prismatic.py):
  - `LayerScale.gamma` is stored as `ls1.scale_factor` / `ls2.scale_factor` (HF renames parameters called
    gamma, so the release patched the name); this module uses the release's name.
  - the featurizer's output is `get_intermediate_layers(n={depth - 2})`: the output of block index depth-2
    (the second-to-last block), without the final norm, prefix tokens removed. Blocks after it and the
    SigLIP `attn_pool` head are never run, but their weights are in the release and are kept so it loads
    strictly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

# timm's default norm layer for ViTs: LayerNorm with eps 1e-6 (vision_transformer.py, `get_norm_layer(None)`).
VIT_LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class ViTSpec:
    """The architecture of one timm ViT as OpenVLA instantiates it (`timm.create_model(id, img_size=224)`)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size_px: int = 14
    class_token: bool = True
    reg_tokens: int = 0
    no_embed_class: bool = False     # position embeddings only for patches (DINOv2 with registers)
    layer_scale: bool = False        # LayerScale after attention and MLP (DINOv2: init_values=1e-5)
    attn_pool: bool = False          # SigLIP's `global_pool='map'` head (weights present, not used by OpenVLA)

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)  # timm truncates: So400m 1152 * 3.7362 -> 4304

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + self.reg_tokens

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ViTSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ViTSpec has no field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


# The timm model ids a released OpenVLA config.json can name (configuration_prismatic.py maps the backbone id to
# these; the model_args are timm 0.9.10's registered definitions).
KNOWN_TIMM_VITS: dict[str, ViTSpec] = {
    "vit_large_patch14_reg4_dinov2.lvd142m": ViTSpec(embed_dim=1024, depth=24, num_heads=16, reg_tokens=4,
                                                     no_embed_class=True, layer_scale=True),
    "vit_so400m_patch14_siglip_224": ViTSpec(embed_dim=1152, depth=27, num_heads=16, mlp_ratio=3.7362,
                                             class_token=False, attn_pool=True),
}


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, (H/p)(W/p), D) by a stride-p convolution (timm PatchEmbed, flatten + NLC)."""

    def __init__(self, patch_size_px: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size_px, stride=patch_size_px, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ViT width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """Per-channel scale; the parameter is `scale_factor` as in the HF release (timm calls it `gamma`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf; timm 0.9.10's default for both backbones) -> fc2."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, spec: ViTSpec):
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.attn = Attention(dim, spec.num_heads)
        self.ls1 = LayerScale(dim) if spec.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.mlp = Mlp(dim, spec.mlp_hidden_dim)
        self.ls2 = LayerScale(dim) if spec.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class AttentionPoolLatent(nn.Module):
    """SigLIP's attention-pooling head (timm `AttentionPoolLatent`, latent_len 1). OpenVLA never runs it (its
    features come from an earlier block); it exists so the released weights load strictly."""

    def __init__(self, spec: ViTSpec):
        super().__init__()
        dim = spec.embed_dim
        self.num_heads, self.head_dim = spec.num_heads, dim // spec.num_heads
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.mlp = Mlp(dim, spec.mlp_hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, D) pooled."""
        b, n, d = x.shape
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, d))
        return (x + self.mlp(self.norm(x)))[:, 0]


class VisionTransformer(nn.Module):
    """timm 0.9.10 VisionTransformer (no classifier head) returning the second-to-last block's patch tokens.

    forward: (B, 3, S, S) float normalised pixels -> (B, (S/p)^2, D).
    """

    def __init__(self, spec: ViTSpec, image_size_px: int):
        super().__init__()
        if image_size_px % spec.patch_size_px:
            raise ValueError(f"image size {image_size_px} px is not a multiple of the patch size {spec.patch_size_px}")
        if spec.depth < 2:
            raise ValueError(f"OpenVLA reads the second-to-last ViT block; depth {spec.depth} has none")
        self.spec = spec
        self.num_patches = (image_size_px // spec.patch_size_px) ** 2
        dim = spec.embed_dim
        self.patch_embed = PatchEmbed(spec.patch_size_px, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if spec.class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, spec.reg_tokens, dim)) if spec.reg_tokens else None
        pos_len = self.num_patches if spec.no_embed_class else self.num_patches + spec.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.randn(1, pos_len, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(spec) for _ in range(spec.depth)])
        self.norm = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.attn_pool = AttentionPoolLatent(spec) if spec.attn_pool else None
        self.gradient_checkpointing = False   # OpenVLAModel.enable_gradient_checkpointing

    @property
    def feature_block_index(self) -> int:
        """The block whose output OpenVLA uses: `n={len(blocks) - 2}` in modeling_prismatic.py."""
        return len(self.blocks) - 2

    def _tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)
        prefix = []
        if self.cls_token is not None:
            prefix.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.spec.no_embed_class:  # positions for patches only, prefix tokens concatenated after
            return torch.cat([*prefix, x + self.pos_embed], dim=1)
        return torch.cat([*prefix, x], dim=1) + self.pos_embed

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self._tokens(pixels)
        # Blocks after the feature block cannot change the result, so they are skipped (timm runs them).
        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks[: self.feature_block_index + 1]:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if checkpointed else block(x)
        return x[:, self.spec.num_prefix_tokens:]


class PrismaticVisionBackbone(nn.Module):
    """One (`featurizer`) or two fused (`featurizer` + `fused_featurizer`) ViTs.

    forward: (B, 3 * n_backbones, S, S) channel-stacked pixels -> (B, N_patches, sum of widths).
    """

    def __init__(self, specs: list[ViTSpec], image_sizes_px: list[int]):
        super().__init__()
        if len(specs) not in (1, 2) or len(image_sizes_px) != len(specs):
            raise ValueError(f"OpenVLA has one or two fused vision backbones, got {len(specs)} specs and "
                             f"{len(image_sizes_px)} image sizes")
        self.featurizer = VisionTransformer(specs[0], image_sizes_px[0])
        self.fused_featurizer = VisionTransformer(specs[1], image_sizes_px[1]) if len(specs) == 2 else None
        if self.fused_featurizer is not None and self.fused_featurizer.num_patches != self.featurizer.num_patches:
            raise ValueError("the fused backbones give different patch counts "
                             f"({self.featurizer.num_patches} vs {self.fused_featurizer.num_patches})")
        self.embed_dim = sum(s.embed_dim for s in specs)

    @property
    def num_patches(self) -> int:
        return self.featurizer.num_patches

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.fused_featurizer is None:
            return self.featurizer(pixel_values)
        first, second = torch.split(pixel_values, [3, 3], dim=1)
        return torch.cat([self.featurizer(first), self.fused_featurizer(second)], dim=2)


class PrismaticProjector(nn.Module):
    """Vision features -> LLM embeddings. Fused backbones: fc1 (x4 width) -GELU- fc2 -GELU- fc3; single: fc1 -GELU- fc2.

    forward: (B, N, vision_dim) -> (B, N, llm_dim).
    """

    def __init__(self, fused: bool, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fused = fused
        if fused:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)
            self.fc3 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(F.gelu(self.fc1(x)))
        return self.fc3(F.gelu(x)) if self.fc3 is not None else x
