"""The one configuration dataclass of SAE training (defaults follow the paper's appendix)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from sae_fast.config_fields import documented

PAPER_LR = 3e-4
PAPER_BETAS = (0.9, 0.99)
PAPER_BATCH_SIZE = 4096
PAPER_TOTAL_TOKENS = 1_000_000_000
TRAINING_DTYPES = ("float32", "float64")
"""Parameter dtypes training accepts. Adam keeps its state in the parameters' dtype: in float16 its eps
(1e-8) underflows to 0, so steps divide by a vanishing denominator, and bfloat16's
8-bit mantissa rounds away updates below 1/256 of a weight, so either would end in a silently worse SAE."""


@dataclass
class TrainConfig:
    """Everything the :class:`~sae_fast.training.Trainer` needs besides the SAEs and the data.

    Optimisation follows the paper (section 6 / appendix): Adam with ``lr=3e-4``,
    ``betas=(0.9, 0.99)``, 4096 activations per step, 1e9 tokens. Every SAE of a sweep gets its
    own Adam with these settings.
    """

    lr: float = documented(PAPER_LR, "Adam learning rate (constant; the paper uses no schedule).")
    betas: tuple[float, float] = documented(PAPER_BETAS, "Adam (beta1, beta2).")
    eps: float = documented(1e-8, "Adam epsilon.")
    batch_size: int = documented(
        PAPER_BATCH_SIZE,
        "Activations (tokens) per optimiser step, summed over all ranks; BatchTopK's budget is batch_size*k.",
    )
    micro_batches: int = documented(
        1,
        "Split each (per-rank) batch into this many micro-batches and average their losses (gradient "
        "accumulation). Each micro-batch takes its own batch top-k, exactly like a rank of a DDP run.",
    )
    total_tokens: int | None = documented(
        PAPER_TOTAL_TOKENS,
        "Stop after this many training tokens (None: when the data stream ends).",
    )
    seed: int = documented(
        0,
        "Seeds torch's RNG at the start of a fresh run; the CLI also shuffles cached activations with it and "
        "seeds the SAEs' initialisation with seed + index.",
    )
    init_b_dec_from_data: bool = documented(
        True,
        "Set every SAE's b_dec to the mean of the first batch before the first step (fresh runs only).",
    )
    checkpoint_dir: str | None = documented(None, "Directory for checkpoint.pt (None: no checkpoints, so no resume).")
    checkpoint_every: int = documented(1000, "Write a checkpoint every this many steps (and always at the end).")
    resume: bool = documented(
        False,
        "Continue from checkpoint_dir/checkpoint.pt; an error if it is missing or unreadable.",
    )
    log_every: int = documented(
        10,
        "Record metrics (history, JSONL, tensorboard/wandb) every this many steps and at the last step.",
    )
    log_jsonl: str | None = documented(
        None,
        "Append one JSON object per SAE per logged step to this file (None: no JSONL log).",
    )
    tensorboard_dir: str | None = documented(
        None,
        "Also log to TensorBoard in this directory (needs the tensorboard package).",
    )
    wandb_project: str | None = documented(
        None,
        "Also log to this Weights & Biases project (needs the wandb package).",
    )
    device: str = documented("cpu", "Device the SAEs are moved to and batches are moved to before each step.")
    dtype: str = documented(
        "float32",
        "Floating-point dtype of the SAE parameters and Adam's state: float32 or float64 (float16/bfloat16 "
        "lose Adam's updates; load the trained SAE in them with load_pretrained(path, dtype=...)).",
    )
    progress: bool = documented(True, "Show a tqdm progress bar with loss, L0 and NMSE of every SAE.")
    extra: dict[str, Any] = documented(
        factory=dict,
        help="Free-form metadata stored with checkpoints (e.g. the hook point and model name).",
    )

    def __post_init__(self) -> None:
        self.validate()
        self.betas = (float(self.betas[0]), float(self.betas[1]))  # a list from JSON or argparse compares equal

    def validate(self) -> TrainConfig:
        """Raise ValueError/TypeError naming the first bad field and how to fix it; changes nothing."""
        for name in ("batch_size", "micro_batches", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {value!r}")
        if self.total_tokens is not None and (
            isinstance(self.total_tokens, bool) or not isinstance(self.total_tokens, int) or self.total_tokens < 1
        ):
            raise ValueError(f"TrainConfig.total_tokens must be an int >= 1 or None, got {self.total_tokens!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"TrainConfig.lr must be a finite number > 0, got {self.lr!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.eps, (int, float)) or not 0 < self.eps < math.inf:
            raise ValueError(f"TrainConfig.eps must be a finite number > 0, got {self.eps!r}")
        if self.batch_size % self.micro_batches:
            raise ValueError(
                f"TrainConfig.batch_size={self.batch_size} must be divisible by micro_batches={self.micro_batches}"
            )
        self.torch_dtype  # validates the name
        if str(self.dtype) not in TRAINING_DTYPES:
            raise ValueError(
                f"TrainConfig.dtype={self.dtype!r} cannot train correctly: Adam keeps its state in the parameters' "
                "dtype, where float16 underflows its eps (1e-8) and bfloat16 rounds away updates below 1/256 of a "
                f"weight, so the SAE would come out silently worse. Train in one of {TRAINING_DTYPES} and load the "
                "saved SAE in a lower precision for inference: load_pretrained(path, dtype=torch.bfloat16)"
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("TrainConfig.resume=True needs checkpoint_dir (where checkpoint.pt lives)")
        return self

    @property
    def torch_dtype(self) -> torch.dtype:
        dtype = getattr(torch, str(self.dtype), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"TrainConfig.dtype must name a floating torch dtype (e.g. 'float32'), got {self.dtype!r}")
        return dtype

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / "checkpoint.pt"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (stored in checkpoints and run summaries)."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid fields: {sorted(known)}")
        return cls(**data)


def nested_train_config(value: TrainConfig | dict[str, Any], defaults: dict[str, Any], owner: str) -> TrainConfig:
    """The ``train`` field of another workflow's config: a TrainConfig, or a dict that changes ``defaults``.

    ``defaults`` are that workflow's own training values (e.g. the meta-SAE's lr), so a dict need only
    name what differs from them.
    """
    if isinstance(value, dict):
        return TrainConfig(**{**defaults, **value})
    if not isinstance(value, TrainConfig):
        raise TypeError(f"{owner}.train must be a TrainConfig or a dict of its fields, got {type(value).__name__}")
    return value
