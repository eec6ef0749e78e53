"""OpenVLA-7B (openvla/openvla): the released checkpoint loaded by our own module code, K-sample batched decoding,
LoRA fine-tuning with adapter-only checkpoints, distributed fine-tuning. Needs the `vla` extra.

    release.py    the released directory: file checks, config, statistics, base fingerprint
    vision.py     DINOv2 + SigLIP ViTs with timm's parameter names, projector
    modeling.py   OpenVLAModel (vision + projector + transformers Llama), weight loading, KV-cache decoding
    processor.py  prompt, tokenizer, 224 px image preprocessing, 256-bin action tokenizer
    augment.py    training image augmentation (crop + colour jitter) and the test-time center crop
    policy.py     the registered `openvla` policy (select_action, sample_actions, compute_loss), base cache
    finetune.py   LoRA fine-tuning on store episodes; single process or torchrun (DDP / FSDP)

Importing this package registers the policy and imports torch only; transformers, peft and tokenizers are
imported when a policy is built.
"""

from robot_stack.policies.openvla.policy import OpenVLAConfig, OpenVLAPolicy

__all__ = ["OpenVLAConfig", "OpenVLAPolicy"]
