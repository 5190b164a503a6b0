"""Training metrics: the in-memory history, a JSONL log, and optional TensorBoard / wandb sinks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sae_fast.sae.output import TrainingOutput
from sae_fast.sae.reconstruction_sums import ReconstructionSums
from sae_fast.io.atomic import atomic_write_bytes


@torch.no_grad()
def step_metrics(output: TrainingOutput) -> dict[str, float]:
    """Scalars of one step of one SAE (the trainer adds the SAE's ``training_statistics`` after the step).

    ``nmse`` is :class:`~sae_fast.sae.reconstruction_sums.ReconstructionSums`' over the batch's
    tokens (the definition :func:`sae_fast.evaluation.evaluate` uses on held-out data), in the SAE's
    normalised space (``output.target``): the input space when it does not normalise.
    """
    sums = ReconstructionSums(output.target.shape[-1])
    sums.add(output.target, output.x_hat)
    return {
        "loss": float(output.loss),
        "mse": float(output.mse),
        "aux_loss": float(output.aux_loss),
        "sparsity_loss": float(output.sparsity_loss),
        "l0": float(output.l0),
        "nmse": sums.nmse(),
    }


class MetricsLogger:
    """Fans every record out to the JSONL file and the optional sinks (main rank only)."""

    def __init__(
        self, jsonl_path: str | None, *, tensorboard_dir: str | None = None, wandb_project: str | None = None,
        run_config: dict[str, Any] | None = None, enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.jsonl_path = Path(jsonl_path) if jsonl_path and enabled else None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        if self.jsonl_path is not None:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ValueError("tensorboard_dir was set but tensorboard is not installed (pip install tensorboard)") from error
            self._tb = SummaryWriter(tensorboard_dir)
        if wandb_project:
            try:
                import wandb
            except ImportError as error:
                raise ValueError("wandb_project was set but wandb is not installed (pip install wandb)") from error
            self._wandb = wandb.init(project=wandb_project, config=run_config or {})

    def truncate_after(self, step: int) -> None:
        """Drop JSONL records past ``step`` (written by a run that died after its last checkpoint).

        Resuming replays those steps, so keeping them would log each twice.
        """
        if self.jsonl_path is None or not self.jsonl_path.exists():
            return
        kept = []
        for line in self.jsonl_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the crash
            if record.get("step", 0) <= step:
                kept.append(line)
        atomic_write_bytes(self.jsonl_path, "".join(f"{line}\n" for line in kept).encode())

    def log(self, records: list[dict[str, Any]]) -> None:
        if not self.enabled or not records:
            return
        if self.jsonl_path is not None:
            with open(self.jsonl_path, "a") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        for record in records:
            scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k not in ("step",)}
            if self._tb is not None:
                for key, value in scalars.items():
                    self._tb.add_scalar(f"{record['sae']}/{key}", value, record["step"])
            if self._wandb is not None:
                self._wandb.log({f"{record['sae']}/{k}": v for k, v in scalars.items()}, step=record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
