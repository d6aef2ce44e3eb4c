"""Training: the Accelerate loop, checkpoints, trackers and evaluation during training."""

from anymodal.training.context import TrainContext
from anymodal.training.loop import TrainResult, train, train_from_recipe

__all__ = ["TrainContext", "TrainResult", "train", "train_from_recipe"]
