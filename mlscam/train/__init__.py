"""Training: ONE loop (``loop.Trainer``) for the modes single_column, global and global_rollout."""
from .build import build_trainer, train
from .loop import Trainer, TrainResult

__all__ = ["Trainer", "TrainResult", "build_trainer", "train"]
