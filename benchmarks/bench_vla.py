"""OpenVLA decoding and adapter-swap measurements -> benchmarks/results/vla.md + vla.json (measurements, not tests).

    python benchmarks/bench_vla.py          CPU, the tiny release-layout model (robot_stack_testing/tiny_openvla.py)
    python benchmarks/bench_vla.py --gpu    one CUDA GPU, a RANDOM-WEIGHT model of the released 7B architecture
                                            (meta-device build, random init directly on the GPU in bf16, no
                                            download; latency does not depend on the weights). ~3 min on an H100.

Rows: select_action (greedy, project path: one prefill + KV-cache decode restricted to the 256 action ids),
sample_actions K = 1, 4, 8, 16 (one prefill, K sequences as one batch), plain HF `generate(max_new_tokens=7)` on the
same model and inputs (the release's predict_action path), adapter swap (load an adapter checkpoint on the cached
base; the runner's pointer swap), and on GPU peak memory and one LoRA training step (rank 32, batch 16).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def _timeit(fn, repeats: int, warmup: int = 2, cuda: bool = False) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90)), "n": repeats}


def hf_generate_fn(vla, pixels, ids):
    """The release's path: multimodal embeddings, then transformers' generate for 7 new tokens (greedy, full
    vocabulary, batch 1)."""
    def run():
        with torch.no_grad():
            emb = vla.multimodal_embeddings(pixels, ids)
            return vla.language_model.generate(inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.long,
                                               device=emb.device), max_new_tokens=7, min_new_tokens=7, do_sample=False,
                                               pad_token_id=0)
    return run


def bench_cpu(repeats: int) -> dict:
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.policies.checkpoint import PolicySchema, load_policy
    from robot_stack.policies.openvla.finetune import fit_action_normalizer, save_adapter
    from robot_stack.policies.openvla.policy import OpenVLAConfig, OpenVLAPolicy
    from robot_stack.types import rig_features
    from robot_stack_testing.tiny_openvla import (
        INSTRUCTION,
        build_tiny_openvla,
        random_image,
        synthetic_frames,
    )

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    base = build_tiny_openvla(tmp / "base")
    obs = {"observation.images.front": random_image(0, (224, 224))}
    normalizer = fit_action_normalizer(synthetic_frames().actions)
    policy = OpenVLAPolicy(OpenVLAConfig(base_dir=str(base), lora_rank=32, deploy_task=INSTRUCTION), normalizer)
    rows = {"select_action": _timeit(lambda: policy.select_action(obs), repeats)}
    for k in (1, 4, 8, 16):
        rows[f"sample_actions K={k}"] = _timeit(lambda k=k: policy.sample_actions(obs, k), repeats)
    pixels, ids = policy._inputs(obs)
    # Same inputs for both decoders (image preprocessing and tokenisation excluded from these two rows).
    from robot_stack.policies.openvla.modeling import decode_actions

    rows["project decode only, greedy (same inputs as HF generate)"] = _timeit(
        lambda: decode_actions(policy.vla, pixels, ids, 7, 1, policy.action_tokenizer), repeats)
    rows["HF generate(max_new_tokens=7)"] = _timeit(hf_generate_fn(policy.vla, pixels, ids), repeats)
    schema = PolicySchema.from_features(rig_features({"front": (224, 224)}, n_joints=6))
    ckpt = save_adapter(policy, normalizer, schema, tmp / "ckpt", 1, step=0)
    rows["adapter load on the cached base (loader thread)"] = _timeit(lambda: load_policy(ckpt, expected_schema=schema),
                                                                      max(3, repeats // 4), warmup=1)
    runner = PolicyRunner(schema)
    swap_ms = []
    for _ in range(5):
        staged, _ = load_policy(ckpt, expected_schema=schema)
        from robot_stack.inference.manifest import make_update

        runner._staged = (staged, make_update(ckpt), "", False)   # what the loader thread stages
        t0 = time.perf_counter()
        runner.activate_staged()
        swap_ms.append((time.perf_counter() - t0) * 1e3)
        runner._max_version.clear()
    rows["swap between two ticks (activate_staged)"] = {"median_ms": statistics.median(swap_ms), "n": len(swap_ms)}
    n_params = sum(p.numel() for p in policy.vla.parameters())
    n_lora = sum(p.numel() for p in policy.trainable_parameters())
    return {"device": "cpu (1 thread)", "model": f"tiny release-layout OpenVLA, {n_params / 1e6:.2f} M parameters "
            f"(LoRA r32: {n_lora / 1e6:.2f} M)", "torch": torch.__version__, "rows": rows}


def bench_gpu(repeats: int, batch_size: int) -> dict:
    from peft import LoraConfig, inject_adapter_in_model

    from robot_stack.policies.openvla.modeling import build_empty_model, decode_actions
    from robot_stack.policies.openvla.policy import lora_target_modules
    from robot_stack.policies.openvla.processor import ActionTokenizer
    from robot_stack.policies.openvla.release import read_architecture

    assert torch.cuda.is_available(), "--gpu needs a CUDA device"
    dev = torch.device("cuda")
    config = {"model_type": "openvla", "image_sizes": [224, 224], "n_action_bins": 256, "pad_to_multiple_of": 64,
              "pad_token_id": 32000, "use_fused_vision_backbone": True,
              "text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064},
              "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"]}
    arch = read_architecture(config, Path("config.json"))
    t0 = time.perf_counter()
    vla = build_empty_model(arch, torch.bfloat16).to_empty(device=dev)
    with torch.no_grad():
        for p in vla.parameters():
            p.normal_(0.0, 0.02)
    vla.reset_rotary_buffers(dev)
    vla.requires_grad_(False).eval()
    init_s = time.perf_counter() - t0
    at = ActionTokenizer(arch.action_vocab_size)
    pixels = torch.randn(1, 6, 224, 224, device=dev, dtype=torch.bfloat16)
    ids = torch.randint(3, 31000, (1, 20), device=dev)   # "<s> In: What action ... ?\nOut: ▁" is ~20 tokens
    ids[0, 0] = 1
    torch.cuda.reset_peak_memory_stats()
    rows = {}
    for k in (1, 8, 16):
        rows[f"project path K={k}"] = _timeit(lambda k=k: decode_actions(vla, pixels, ids, 7, k, at, temperature=1.0,
                                                                         top_p=0.9), repeats, cuda=True)
    rows["project path greedy (select_action)"] = _timeit(lambda: decode_actions(vla, pixels, ids, 7, 1, at), repeats,
                                                          cuda=True)
    rows["HF generate(max_new_tokens=7)"] = _timeit(hf_generate_fn(vla, pixels, ids), repeats, cuda=True)
    inference_peak_gb = torch.cuda.max_memory_allocated() / 2**30
    # One LoRA step at the reference's batch size (vla-scripts/finetune.py): rank 32, alpha 16, AdamW 5e-4.
    lora = LoraConfig(r=32, lora_alpha=16, lora_dropout=0.0, target_modules=lora_target_modules(vla),
                      init_lora_weights="gaussian")
    vla = inject_adapter_in_model(lora, vla)
    for n, p in vla.named_parameters():
        if "lora_" in n:
            p.data = p.data.float()
    params = [p for p in vla.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4)
    b = batch_size
    seq = torch.randint(3, 31000, (b, 28), device=dev)
    seq[:, 0] = 1
    labels = torch.full_like(seq, -100)
    labels[:, -8:] = seq[:, -8:]
    batch = {"pixel_values": torch.randn(b, 6, 224, 224, device=dev, dtype=torch.bfloat16), "input_ids": seq,
             "attention_mask": torch.ones_like(seq), "labels": labels}

    def step():
        loss, _, _ = vla.action_loss(**batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    vla.train()
    torch.cuda.reset_peak_memory_stats()
    rows[f"LoRA train step, batch {b}"] = _timeit(step, max(3, repeats // 4), warmup=1, cuda=True)
    train_peak_gb = torch.cuda.max_memory_allocated() / 2**30
    return {"device": torch.cuda.get_device_name(), "model": "random-weight OpenVLA-7B architecture, bf16, SDPA",
            "torch": torch.__version__, "init_s": init_s, "inference_peak_gb": inference_peak_gb,
            "train_peak_gb": train_peak_gb, "lora_params_m": sum(p.numel() for p in params) / 1e6, "rows": rows}


def _table(result: dict) -> list[str]:
    lines = ["| measurement | median ms | p90 ms |", "| --- | ---: | ---: |"]
    for name, r in result["rows"].items():
        p90 = f"{r['p90_ms']:.1f}" if "p90_ms" in r else "–"
        lines.append(f"| {name} | {r['median_ms']:.2f} | {p90} |")
    return lines


def write_report(data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vla.json").write_text(json.dumps(data, indent=2) + "\n")
    out = ["# OpenVLA: decoding, K samples, adapter swap", "",
           "Written by `benchmarks/bench_vla.py` (measurements, not tests). Project path = one prefill of image + "
           "prompt, then K sequences of 7 action tokens decoded as one batch on the shared KV cache, logits "
           "restricted to the 256 action ids (robot_stack/policies/openvla/modeling.py `decode_actions`). "
           "HF generate = the release's `predict_action` path (transformers `generate`, greedy, batch 1) on the "
           "same model and inputs.", ""]
    cpu = data.get("cpu")
    if cpu:
        out += [f"## CPU — {cpu['model']}", "", f"Device: {cpu['device']}, torch {cpu['torch']}. The tiny model's "
                "absolute times say little about a 7B model; its rows show the per-call overhead of the decode loop "
                "and that an adapter swap costs a load on the loader thread and a pointer swap between ticks. Measured on 2 CPU "
                "cores shared with other jobs: differences below ~20 % are noise. On this tiny model the project decode "
                "and HF generate cost about the same (both are per-call overhead); whether the project path reaches "
                "the ≥ 2× goal on the 7B model is a GPU question the --gpu run answers.", "",
                *_table(cpu), ""]
    gpu = data.get("gpu")
    if gpu:
        rows = gpu["rows"]
        speedup = rows["HF generate(max_new_tokens=7)"]["median_ms"] / rows["project path greedy (select_action)"]["median_ms"]
        k_ratio = rows["project path K=8"]["median_ms"] / rows["project path K=1"]["median_ms"]
        out += [f"## GPU — {gpu['device']}, {gpu['model']}", "", *_table(gpu), "",
                f"- project path vs HF generate: **{speedup:.2f}×** (goal ≥ 2×)",
                f"- K=8 / K=1 latency: **{k_ratio:.2f}** (goal ≤ 1.5)",
                f"- peak memory, inference: {gpu['inference_peak_gb']:.1f} GiB; LoRA step "
                f"({gpu['lora_params_m']:.0f} M adapter parameters): {gpu['train_peak_gb']:.1f} GiB", ""]
    else:
        out += ["## GPU", "", "No GPU was available when this file was written. The GPU table comes from one command "
                "(≤ 5 min on one H100/H200, no download: random weights of the released 7B architecture):", "",
                "    python benchmarks/bench_vla.py --gpu", "",
                "It reports the project path vs plain HF generate (goal ≥ 2×), K=8 vs K=1 latency (goal ≤ 1.5×), "
                "peak memory, and one LoRA step (rank 32) at batch 16.", ""]
    (RESULTS / "vla.md").write_text("\n".join(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    path = RESULTS / "vla.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if args.gpu:
        data["gpu"] = bench_gpu(args.repeats, args.batch_size)
    else:
        data["cpu"] = bench_cpu(args.repeats)
    write_report(data)
    print((RESULTS / "vla.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
