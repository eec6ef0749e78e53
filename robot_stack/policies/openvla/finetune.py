"""Fine-tuning OpenVLA on store episodes: LoRA (default) or full, one process or `torchrun` (DDP / FSDP).

    store ─► eligible episodes (sources, success_only, task) ─► EpisodeFrames: images, actions, per-frame task
        ─► Normalizer.fit (action q01/q99, gripper passthrough) ─► OpenVLAPolicy on the base + a LoRA adapter
        ─► per step: B frames (rank-seeded) ─► make_training_batch ─► [DDP] loss ─► AdamW (lr 5e-4, constant)
        ─► rank 0: save_checkpoint (adapter only, base named by fingerprint) ─► PolicyUpdate for the runner

The recipe is vla-scripts/finetune.py's: batch 16, lr 5e-4 constant AdamW, LoRA rank 32 / alpha 16 / dropout
0 on all linear layers, image_aug (90 %-area random crop + brightness/contrast/saturation/hue jitter,
augment.py; OpenVLAConfig.train_crop_scale / train_color_jitter), logged loss, action-token accuracy and L1 of
the decoded actions. Under torchrun the
LoRA run uses DistributedDataParallel (rank 0's adapter is broadcast at wrap time, gradients averaged each step,
so every rank ends with the same adapter); `--strategy fsdp` with `--lora-rank 0` fully fine-tunes with FSDP2
(`fully_shard` per ViT block and Llama decoder layer), the way a lab fine-tunes all 7B weights on 8 GPUs.

    torchrun --nproc-per-node 8 -m robot_stack.policies.openvla.finetune --store data/stores/rig \\
        --base-dir /models/openvla-7b --checkpoints data/checkpoints/openvla --steps 5000 --batch-size 16
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_stack.policies.normalizer import Normalizer
from robot_stack.policies.openvla.policy import TASK_KEY, OpenVLAConfig, OpenVLAPolicy
from robot_stack.types import ACTION_KEY, GRIPPER_INDEX, image_key

log = logging.getLogger(__name__)


class EpisodeFrames:
    """In-memory frames of chosen store episodes: images (N, H, W, 3) of one camera, actions (N, 7), tasks (N)."""

    def __init__(self, images: np.ndarray, actions: np.ndarray, tasks: Sequence[str], camera: str):
        if not (len(images) == len(actions) == len(tasks)) or len(actions) == 0:
            raise ValueError(f"need equal, non-zero numbers of images/actions/tasks; got {len(images)}, "
                             f"{len(actions)}, {len(tasks)}")
        self.images, self.actions = np.asarray(images), np.asarray(actions, np.float32)
        self.tasks, self.camera = np.asarray(list(tasks), dtype=object), camera

    @classmethod
    def from_store(cls, store: Any, episodes: Sequence[int], camera: str) -> EpisodeFrames:
        """Every frame of `episodes`; each frame's task is its episode's language (store meta `task`)."""
        images, actions, tasks = [], [], []
        for i in episodes:
            ep = store.get_episode(i, keys=[image_key(camera), ACTION_KEY])
            images.append(np.asarray(ep[image_key(camera)]))
            actions.append(np.asarray(ep[ACTION_KEY]))
            tasks += [store.episode_meta(i).task] * len(actions[-1])
        if not images:
            raise ValueError("no episodes to fine-tune on; record some or widen the episode filter")
        return cls(np.concatenate(images), np.concatenate(actions), tasks, camera)

    def __len__(self) -> int:
        return len(self.actions)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, Any]:
        """{observation.images.<camera>: (B, H, W, 3) uint8, action: (B, 7) float32, task: list[str] (B)}."""
        idx = rng.integers(0, len(self), size=batch_size)
        return {image_key(self.camera): self.images[idx], ACTION_KEY: self.actions[idx],
                TASK_KEY: [str(t) for t in self.tasks[idx]]}


def fit_action_normalizer(actions: np.ndarray) -> Normalizer:
    """q01/q99 of the fine-tuning actions (OpenVLA's BOUNDS_Q99), gripper unnormalised; no state statistics."""
    actions = np.asarray(actions, np.float64)
    return Normalizer.fit(actions, np.zeros((len(actions), 0)), passthrough_dims=(GRIPPER_INDEX,))


@dataclass
class FinetuneConfig:
    steps: int = 1000
    batch_size: int = 16          # per rank (finetune.py: 16 per GPU)
    seed: int = 0
    log_every_steps: int = 10
    strategy: str = "ddp"         # under torchrun: "ddp" (LoRA or full) or "fsdp" (full fine-tune only)


@dataclass
class FinetuneResult:
    step: int
    history: list[dict[str, float]] = field(default_factory=list)   # per-step loss, action_accuracy, action_l1


def _distributed() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def own_base_weights(policy: OpenVLAPolicy) -> None:
    """Full fine-tuning: replace the shared cached base tensors with this policy's own trainable copies (an
    update must never write into BASE_CACHE, which other policies in the process act with)."""
    for module in policy.vla.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, torch.nn.Parameter(p.detach().clone(), requires_grad=True))


def wrap_distributed(policy: OpenVLAPolicy, strategy: str) -> torch.nn.Module:
    """DDP over the trainable parameters (frozen base tensors are identical on every rank, so they are not
    broadcast: 15 GB at start-up for nothing) or FSDP2 for a full fine-tune."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    if strategy == "ddp":
        frozen = [n for n, p in policy.named_parameters() if not p.requires_grad]
        DDP._set_params_and_buffers_to_ignore_for_model(policy, frozen)
        device_ids = [policy.device.index] if policy.device.type == "cuda" else None
        return DDP(policy, device_ids=device_ids)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        if policy.config.lora_rank > 0:
            raise ValueError("FSDP is for full fine-tuning (lora_rank 0); LoRA trains ~1 % of the weights and "
                             "uses DDP (--strategy ddp)")
        vla = policy.vla
        for vit in (vla.vision_backbone.featurizer, vla.vision_backbone.fused_featurizer):
            for block in vit.blocks if vit is not None else ():
                fully_shard(block)
        for layer in vla.language_model.model.layers:
            fully_shard(layer)
        fully_shard(vla)
        # FSDP2 gathers the root's parameters (embeddings, projector, lm_head, ViT stems) in a hook on forward();
        # the training loss enters through action_loss, so register it as a forward method too (otherwise:
        # "aten.embedding.default got mixed torch.Tensor and DTensor").
        register_fsdp_forward_method(vla, "action_loss")
        return policy
    raise ValueError(f"strategy {strategy!r}; use ddp or fsdp")


def finetune(policy: OpenVLAPolicy, frames: EpisodeFrames, cfg: FinetuneConfig,
             optimizer: torch.optim.Optimizer | None = None,
             on_progress: Callable[[dict[str, float]], None] | None = None, start_step: int = 0,
             should_stop: Callable[[], bool] | None = None) -> FinetuneResult:
    """cfg.steps optimiser steps on frames (fewer if should_stop() turns true: result.step says how many ran);
    under torch.distributed each rank draws its own batches."""
    rank, world = _distributed()
    if cfg.strategy == "fsdp" and policy.config.lora_rank > 0:
        raise ValueError("FSDP is for full fine-tuning (lora_rank 0); LoRA trains ~1 % of the weights and uses "
                         "DDP (strategy ddp)")
    if policy.config.lora_rank <= 0:
        own_base_weights(policy)
    model: torch.nn.Module = wrap_distributed(policy, cfg.strategy) if world > 1 else policy
    if optimizer is None:
        optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=policy.config.lr,
                                      weight_decay=policy.config.weight_decay)
    # A resumed or next-version call (start_step > 0) draws new batches and augmentations, not the first ones again.
    rng = np.random.default_rng([cfg.seed, rank, start_step] if start_step else [cfg.seed, rank])
    policy.train()
    history: list[dict[str, float]] = []
    t0 = time.monotonic()
    done = 0
    for i in range(cfg.steps):
        if should_stop is not None and should_stop():
            log.info("fine-tuning stopped at step %d", start_step + i)
            break
        batch = frames.sample(cfg.batch_size, rng)
        model_batch = policy.make_training_batch(batch[image_key(frames.camera)], batch[ACTION_KEY],
                                                 batch[TASK_KEY], rng)
        loss, logits, targets = model(model_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        metrics = policy.training_metrics(loss, logits, targets)
        history.append(metrics)
        done = i + 1
        step = start_step + i + 1
        if rank == 0 and (step % max(cfg.log_every_steps, 1) == 0 or i == cfg.steps - 1):
            report = {**{k: float(np.mean([h[k] for h in history[-cfg.log_every_steps:]])) for k in metrics},
                      "step": float(step), "steps_per_s": (i + 1) / max(time.monotonic() - t0, 1e-9)}
            log.info("step %d  loss %.4f  action acc %.3f  L1 %.4f", step, report["loss"],
                     report["action_accuracy"], report["action_l1"])
            if on_progress is not None:
                on_progress(report)
    policy.eval()
    return FinetuneResult(start_step + done, history)


def save_adapter(policy: OpenVLAPolicy, normalizer: Normalizer, schema: Any, root_dir: str | Path, version: int,
                 step: int, parent: int | None = None, extra: dict | None = None) -> Path:
    """An adapter-only checkpoint (checkpoint.save_checkpoint through the policy's hooks); its config names the
    base by fingerprint, repeated in the manifest's extra for people reading it."""
    from robot_stack.policies.checkpoint import save_checkpoint

    info = {"base_fingerprint": policy.config.base_fingerprint, "base_dir": policy.config.base_dir,
            "lora_rank": policy.config.lora_rank, **(extra or {})}
    return save_checkpoint(policy, normalizer, schema, root_dir, version, step, parent=parent, extra=info)


# ---- torchrun entry point -------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    import torch.distributed as dist

    from robot_stack.learn.dataset import eligible_episodes
    from robot_stack.policies.checkpoint import PolicySchema, list_versions
    from robot_stack.store.trajectory import TrajectoryStore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--base-dir", required=True)
    ap.add_argument("--checkpoints", required=True, help="checkpoint root; a new v#### is written there")
    ap.add_argument("--camera", default="front")
    ap.add_argument("--sources", nargs="*", default=None)
    ap.add_argument("--all-episodes", action="store_true", help="also failed episodes")
    ap.add_argument("--task", default=None)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lora-rank", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if world > 1:
        if device.startswith("cuda"):
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        torch.manual_seed(args.seed)
        store = TrajectoryStore.open(args.store)
        episodes = eligible_episodes(store, args.sources, not args.all_episodes, args.task)
        frames = EpisodeFrames.from_store(store, episodes, args.camera)
        normalizer = fit_action_normalizer(frames.actions)
        config = OpenVLAConfig(cameras=(args.camera,), base_dir=args.base_dir, lora_rank=args.lora_rank, lr=args.lr,
                               deploy_task=str(frames.tasks[0]))
        policy = OpenVLAPolicy(config, normalizer, device=device)
        result = finetune(policy, frames, FinetuneConfig(steps=args.steps, batch_size=args.batch_size,
                                                         seed=args.seed, strategy=args.strategy))
        if int(os.environ.get("RANK", "0")) == 0:
            version = max([0, *list_versions(args.checkpoints)]) + 1
            path = save_adapter(policy, normalizer, PolicySchema.from_store_schema(store.schema), args.checkpoints,
                                version, result.step, extra={"episodes": len(episodes), "frames": len(frames)})
            log.info("wrote %s", path)
        store.close()
    finally:
        if world > 1:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
