"""Training: ONE builder (``build.build_trainer``) and ONE loop (``loop.Trainer``) for the modes
single_column, global and global_rollout, serial or tile-parallel (a ``TileContext`` of one rank = serial)."""
from .build import build_trainer, run_training, train
from .loop import Trainer, TrainResult

__all__ = ["Trainer", "TrainResult", "build_trainer", "run_training", "train"]
