"""Batch streams the trainer can checkpoint and restore exactly.

The trainer needs to know, at every checkpoint, where in the data it is, so that ``--resume``
continues with exactly the batch an uninterrupted run would have seen next. Any stream that
implements :class:`ResumableBatches` gets this for free:

- ``__iter__`` yields ``[n, d_in]`` float tensors from the *current* position onward and advances
  the position *before* yielding each batch (so ``state_dict()`` taken while the trainer works on a
  batch already points past it);
- ``state_dict()`` must be cheap (the trainer calls it after every step) and JSON/torch-saveable;
- ``load_state_dict(state)`` moves the position back to a saved one.

:class:`~sae_fast.activations.shuffled_batches.ShuffledBatches` is the seeded, indexable implementation over an in-memory tensor or a
(memory-mapped) numpy array, e.g. an activation cache. Plain iterables are wrapped in
:class:`CountingBatches`, which resumes by replaying and discarding the consumed batches: exact
only when the iterable is deterministic, and slow for long runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from sae_fast.activations.shuffled_batches import ShuffledBatches
from sae_fast.validation import check_positive_int

__all__ = ["ResumableBatches", "ShuffledBatches", "CountingBatches", "fixed_size_batches", "as_resumable"]


@runtime_checkable
class ResumableBatches(Protocol):
    """A batch stream whose position can be saved and restored (see the module docstring)."""

    def __iter__(self) -> Iterator[Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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
    check_positive_int(batch_size, "batch_size")
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
