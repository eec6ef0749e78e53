"""A tiny, randomly initialised SigLIP or CLIP saved in the Hugging Face layout (tests, benchmarks).

    build_tiny_image_text_model(dir, "siglip") ─► dir/config.json, dir/model.safetensors   (SiglipModel.save_pretrained)
                                                  dir/tokenizer.json, dir/tokenizer_config.json   (tokenizers WordLevel)
                                                  dir/preprocessor_config.json   SigLIP: resize to image_size_px, mean/std 0.5
    build_tiny_image_text_model(dir, "clip")   ─► the same files from CLIPModel; CLIP's processor: shortest edge,
                                                  centre crop, bicubic, OpenAI's mean/std

The real architecture and parameter names (transformers builds both from the same classes as a released
checkpoint), only small: 2 layers of width 32 in each tower, `patch_size_px` patches on `image_size_px` images,
and a word-level vocabulary trained on robot instructions (a released SigLIP ships SentencePiece, CLIP a BPE;
what the loader needs is only that AutoTokenizer reads the directory). Nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

INSTRUCTIONS = (
    "put the cube in the bowl", "take the cube out of the bowl", "pick up the red block", "open the drawer",
    "close the drawer", "put the spoon on the towel", "stack the green block on the blue block", "push the button",
)
_SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")   # ids 0..3; CLIP pools at the first </s> (id 3)
TEXT_CONTEXT = 16                               # tokens (SigLIP pads every text to this)
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def _tiny_tokenizer(texts: Sequence[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=list(_SPECIALS), show_progress=False))
    # SigLIP's tokenizer appends </s> (its pooled token is the last position of the padded text); CLIP's wraps the
    # text in <s> ... </s> and pools at </s>. One template serves both here: <s> text </s>.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                       special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", model_max_length=TEXT_CONTEXT)


def _tiny_sentencepiece_tokenizer(texts: Sequence[str], workdir: Path):
    """SigLIP's released tokenizer: SiglipTokenizer over a SentencePiece model (spiece.model, no tokenizer.json),
    trained here on the instructions (pad 0, </s> 1, <unk> 2, no <s>: SigLIP appends </s> and pools the last
    position of the padded text)."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    workdir.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(list(texts) * 20), model_prefix=str(workdir / "spiece"),
                                   vocab_size=60, model_type="unigram", hard_vocab_limit=False, minloglevel=2,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
                                   unk_piece="<unk>")
    return SiglipTokenizer(vocab_file=str(workdir / "spiece.model"), model_max_length=TEXT_CONTEXT)


def build_tiny_image_text_model(path: str | Path, model_type: str = "siglip", image_size_px: int = 32,
                                patch_size_px: int = 8, hidden_dim: int = 32, layers: int = 2, seed: int = 0,
                                texts: Sequence[str] = INSTRUCTIONS, sentencepiece: bool = False) -> Path:
    """Write a tiny random `model_type` ("siglip" | "clip") checkpoint directory to `path`; returns it.

    sentencepiece: give a SigLIP base the released layout's tokenizer (spiece.model + SiglipTokenizer) instead of
    a tokenizer.json."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    if model_type not in ("siglip", "clip"):
        raise ValueError(f"model_type must be 'siglip' or 'clip', got {model_type!r}")
    path = Path(path)
    if sentencepiece and model_type != "siglip":
        raise ValueError("sentencepiece=True is SigLIP's released tokenizer; CLIP ships a BPE tokenizer.json")
    tokenizer = (_tiny_sentencepiece_tokenizer(texts, path.parent / f".{path.name}_spm") if sentencepiece
                 else _tiny_tokenizer(texts))
    common = {"hidden_size": hidden_dim, "intermediate_size": 2 * hidden_dim, "num_hidden_layers": layers,
              "num_attention_heads": 2}
    specials = ({"pad_token_id": 0, "eos_token_id": 1} if sentencepiece
                else {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3})
    text = {**common, "vocab_size": len(tokenizer), "max_position_embeddings": TEXT_CONTEXT, **specials}
    vision = {**common, "image_size": image_size_px, "patch_size": patch_size_px}
    torch.manual_seed(seed)
    if model_type == "siglip":
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = {"image_processor_type": "SiglipImageProcessor", "processor_class": "SiglipProcessor",
                     "do_resize": True, "size": {"height": image_size_px, "width": image_size_px}, "resample": 2,
                     "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    else:
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=hidden_dim))
        processor = {"image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
                     "do_resize": True, "size": {"shortest_edge": image_size_px}, "resample": 3,
                     "do_center_crop": True, "crop_size": {"height": image_size_px, "width": image_size_px},
                     "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True,
                     "image_mean": CLIP_MEAN, "image_std": CLIP_STD}
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return path
