"""Training runs: configuration, the loop, and its result."""

from core.training.config import TrainConfig, TrainingCancelled, TrainResult
from core.training.loop import BEST_CHECKPOINT, train_model

__all__ = ["BEST_CHECKPOINT", "TrainConfig", "TrainResult", "TrainingCancelled", "train_model"]
