"""Training workflow: one config, one trainer for many SAEs, exact checkpoints, DDP."""

from sae_fast.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sae_fast.training.config import TrainConfig
from sae_fast.training.data import (
    CountingBatches,
    ResumableBatches,
    ShuffledBatches,
    as_resumable,
    fixed_size_batches,
)
from sae_fast.training.distributed import DistributedContext
from sae_fast.training.recipes import PAPER, RECIPES, Recipe, get_recipe
from sae_fast.training.trainer import NonFiniteError, Trainer, TrainResult

__all__ = [
    "TrainConfig", "Trainer", "TrainResult", "NonFiniteError", "CheckpointError", "save_checkpoint",
    "load_checkpoint", "ResumableBatches", "ShuffledBatches", "CountingBatches", "as_resumable",
    "fixed_size_batches", "DistributedContext", "Recipe", "RECIPES", "PAPER", "get_recipe",
]
