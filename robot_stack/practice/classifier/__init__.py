"""The success classifier (practice's reward model): is the task done in this frame, for this instruction?

    base.SuccessClassifier   interface, registry, sha256-checked checkpoint (save / load_classifier)
    cnn.CNNClassifier        the CPU default: a small FiLM-conditioned conv net
    vlm.VLMClassifier        a local Hugging Face SigLIP/CLIP directory + a trained head (optionally LoRA); the
                             checkpoint holds the head (+ adapter) and names its base by fingerprint
    data                     labelled frames from the store (final frames of successes; cross-task negatives)
    train                    train_classifier (balanced BCE; init= to continue), evaluate_classifier (FP/FN per task)
    review                   RetrainOnReview: fine-tune after a person's review, on demos + reviewed attempts only
"""

from robot_stack.practice.classifier.base import (
    CLASSIFIERS,
    ClassifierError,
    SuccessClassifier,
    load_classifier,
    make_classifier,
)
from robot_stack.practice.classifier.train import evaluate_classifier, train_classifier

__all__ = ["CLASSIFIERS", "ClassifierError", "SuccessClassifier", "evaluate_classifier", "load_classifier",
           "make_classifier", "train_classifier"]
