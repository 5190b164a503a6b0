"""Seeded, resumable epochs of shuffled rows of an in-memory tensor or a memory-mapped activation cache.

It is the stream the trainer checkpoints exactly (it implements
:class:`sae_fast.training.data.ResumableBatches`), and it lives with the activation data so that
the cache reader can hand it out without reaching up into training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_fast.validation import check_int, check_positive_int


class ShuffledBatches:
    """Seeded epochs of shuffled rows of ``data`` ``[n_rows, d_in]``, sharded over DDP ranks.

    Epoch ``e`` visits the rows in the order ``randperm(n_rows)`` of a generator seeded with
    ``(seed, e)``, cut into global batches of ``batch_size`` rows (the incomplete tail is dropped
    so every step has the same BatchTopK budget). With ``world_size > 1`` rank ``r`` receives the
    ``r``-th contiguous slice of each global batch, so R ranks together see exactly the batches a
    single process would see, which is what makes DDP and gradient accumulation comparable.

    ``data`` may be a torch tensor or a numpy array / ``np.memmap`` (a memmap is read in ascending
    row order, which keeps the reads sequential; batches keep the shuffled order). ``rows`` (sorted
    indices into ``data``) restricts the epochs to those rows, e.g. the ones a sink filter keeps.
    """

    def __init__(
        self, data: Tensor | np.ndarray, batch_size: int, *, seed: int = 0, epochs: int | None = 1,
        shuffle: bool = True, rank: int = 0, world_size: int = 1, dtype: torch.dtype = torch.float32,
        rows: np.ndarray | None = None,
    ) -> None:
        if not isinstance(data, (Tensor, np.ndarray)) or data.ndim != 2:
            raise TypeError("data must be a 2-D torch.Tensor or numpy array [n_rows, d_in]")
        self.rows = None if rows is None else torch.from_numpy(np.asarray(rows, dtype=np.int64))
        n_rows = data.shape[0] if rows is None else len(rows)
        check_positive_int(batch_size, "batch_size")
        check_positive_int(world_size, "world_size")
        check_int(rank, "rank", lower=0, upper=world_size - 1, upper_name="world_size - 1")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by world_size={world_size}")
        if n_rows < batch_size:
            raise ValueError(
                f"data has {n_rows} rows, fewer than one batch of {batch_size}; use a smaller batch_size"
            )
        if epochs is not None:
            check_positive_int(epochs, "epochs", hint="or None for endless epochs")
        self.data = data
        self.batch_size = batch_size
        self.seed = int(seed)
        self.epochs = epochs
        self.shuffle = bool(shuffle)
        self.rank = rank
        self.world_size = world_size
        self.dtype = dtype
        self.n_rows = n_rows
        self.batches_per_epoch = n_rows // batch_size
        self.epoch = 0
        self.batch_in_epoch = 0

    def __len__(self) -> int:
        """Global batches left from the current position (raises for endless streams)."""
        if self.epochs is None:
            raise TypeError("an endless ShuffledBatches (epochs=None) has no length")
        return (self.epochs - self.epoch) * self.batches_per_epoch - self.batch_in_epoch

    def _order(self, epoch: int) -> Tensor:
        n = self.n_rows
        if not self.shuffle:
            return torch.arange(n)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=generator)

    def _rows(self, indices: Tensor) -> Tensor:
        if self.rows is not None:
            indices = self.rows[indices]
        if isinstance(self.data, Tensor):
            rows = self.data[indices.to(self.data.device)]
        else:
            # Read in ascending row order (sequential on a memmap), then restore the shuffled order, so
            # that any later split of the batch (micro-batches, DDP ranks) sees the same rows.
            order = indices.argsort()
            rows = torch.from_numpy(np.ascontiguousarray(self.data[indices[order].numpy()]))
            rows = rows[order.argsort()]
        return rows.to(self.dtype)

    def __iter__(self) -> Iterator[Tensor]:
        local = self.batch_size // self.world_size
        while self.epochs is None or self.epoch < self.epochs:
            order = self._order(self.epoch)
            while self.batch_in_epoch < self.batches_per_epoch:
                start = self.batch_in_epoch * self.batch_size + self.rank * local
                indices = order[start : start + local]
                self.batch_in_epoch += 1  # advance before yielding: state_dict() then points past this batch
                yield self._rows(indices)
            self.epoch += 1
            self.batch_in_epoch = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "ShuffledBatches", "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "seed": self.seed, "n_rows": self.n_rows, "batch_size": self.batch_size,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"kind": "ShuffledBatches", "seed": self.seed, "n_rows": self.n_rows,
                    "batch_size": self.batch_size, "shuffle": self.shuffle}
        mismatched = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if mismatched:
            raise ValueError(
                "the checkpoint's data position belongs to a different data stream "
                f"(saved vs current: {mismatched}); resume with the same data, batch_size and seed"
            )
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
