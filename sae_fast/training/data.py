"""Batch streams the trainer can checkpoint and restore exactly.

The trainer needs to know, at every checkpoint, where in the data it is, so that ``--resume``
continues with exactly the batch an uninterrupted run would have seen next. Any stream that
implements :class:`ResumableBatches` gets this for free:

- ``__iter__`` yields ``[n, d_in]`` float tensors from the *current* position onward and advances
  the position *before* yielding each batch (so ``state_dict()`` taken while the trainer works on a
  batch already points past it);
- ``state_dict()`` must be cheap (the trainer calls it after every step) and JSON/torch-saveable;
- ``load_state_dict(state)`` moves the position back to a saved one.

:class:`ShuffledBatches` is the seeded, indexable implementation over an in-memory tensor or a
(memory-mapped) numpy array, e.g. an activation cache. Plain iterables are wrapped in
:class:`CountingBatches`, which resumes by replaying and discarding the consumed batches: exact
only when the iterable is deterministic, and slow for long runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor


@runtime_checkable
class ResumableBatches(Protocol):
    """A batch stream whose position can be saved and restored (see the module docstring)."""

    def __iter__(self) -> Iterator[Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by world_size={world_size}")
        if n_rows < batch_size:
            raise ValueError(
                f"data has {n_rows} rows, fewer than one batch of {batch_size}; use a smaller batch_size"
            )
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"epochs must be an int >= 1 or None (endless), got {epochs!r}")
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


class CountingBatches:
    """Wraps a plain iterable of batches: resumes by replaying and discarding consumed batches."""

    def __init__(self, batches: Iterable[Tensor]) -> None:
        if isinstance(batches, Tensor) or not isinstance(batches, Iterable):
            raise TypeError(
                "batches must be an iterable of [batch, d_in] tensors (not a single tensor: "
                "wrap a tensor in ShuffledBatches(data, batch_size))"
            )
        self.batches = batches
        self.consumed = 0
        self._skip = 0

    def __iter__(self) -> Iterator[Tensor]:
        iterator = iter(self.batches)
        for _ in range(self._skip):
            if next(iterator, None) is None:
                raise ValueError(
                    f"cannot resume: the data stream ended after fewer than the {self._skip} batches "
                    "consumed before the checkpoint"
                )
        self.consumed = self._skip
        self._skip = 0
        for batch in iterator:
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "CountingBatches", "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "CountingBatches":
            raise ValueError(f"the checkpoint's data position is of kind {state.get('kind')!r}, not CountingBatches")
        self._skip = self.consumed = int(state["consumed"])


def fixed_size_batches(chunks: Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Re-cut a stream of ``[n_i, d_in]`` chunks into ``[batch_size, d_in]`` batches (tail dropped)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    pending: list[Tensor] = []
    n_pending = 0
    for chunk in chunks:
        chunk = chunk.reshape(-1, chunk.shape[-1])
        pending.append(chunk)
        n_pending += chunk.shape[0]
        if n_pending < batch_size:
            continue
        joined = torch.cat(pending)
        n_full = joined.shape[0] // batch_size * batch_size
        yield from joined[:n_full].split(batch_size)
        pending = [joined[n_full:]] if n_full < joined.shape[0] else []
        n_pending = joined.shape[0] - n_full


def as_resumable(batches: Iterable[Tensor]) -> ResumableBatches:
    """``batches`` itself when it is resumable, otherwise a :class:`CountingBatches` around it."""
    if isinstance(batches, ResumableBatches):
        return batches
    return CountingBatches(batches)
