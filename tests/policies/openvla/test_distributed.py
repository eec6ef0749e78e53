"""Fine-tuning under torch.distributed at world size 2 on CPU with gloo: LoRA under DDP (both ranks end with the
same adapter) and the full fine-tune under FSDP2 `fully_shard` (both ranks end with the same full weights, which
changed, and the parameters were really sharded)."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp
from safetensors import safe_open

from robot_stack_testing.tiny_openvla import ddp_finetune_worker, fsdp_finetune_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_outputs(out_dir) -> tuple[list[dict], list[dict]]:
    """The tensors and metadata each rank wrote to out_dir/rank{r}.safetensors (ranks 0 and 1)."""
    tensors, meta = [], []
    for rank in (0, 1):
        with safe_open(str(out_dir / f"rank{rank}.safetensors"), framework="pt") as f:
            tensors.append({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118 - a safetensors handle
            meta.append(f.metadata())
    return tensors, meta


def test_ddp_world_size_2_ends_with_identical_adapters(tiny_base, tmp_path):
    # Each rank seeds its LoRA init and its batches differently: equality needs DDP's broadcast + averaging.
    mp.spawn(ddp_finetune_worker, args=(2, str(tiny_base), _free_port(), str(tmp_path), 3), nprocs=2, join=True)
    adapters, meta = _rank_outputs(tmp_path)
    changed = [float(m["changed"]) for m in meta]
    assert adapters[0].keys() == adapters[1].keys() and len(adapters[0]) > 0
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])
    assert min(changed) > 0, "training must have moved the adapters"


def test_fsdp_full_finetune_world_size_2_ends_with_identical_full_weights_that_changed(tiny_base, tmp_path):
    # Each rank draws its own batches; FSDP2 shards every parameter, reduce-scatters the gradients and each rank
    # updates its shard; the weights gathered at the end (full_tensor) must be the same on both ranks.
    mp.spawn(fsdp_finetune_worker, args=(2, str(tiny_base), _free_port(), str(tmp_path), 2), nprocs=2, join=True)
    weights, meta = _rank_outputs(tmp_path)
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 100
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert all(float(m["changed"]) > 0 for m in meta), "training must have moved the weights"
    assert all(int(m["sharded"]) > 0.9 * int(m["parameters"]) for m in meta), meta
