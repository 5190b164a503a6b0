"""A seeded shuffle buffer that mixes rows from many sequences into fixed-size batches.

Consecutive activation rows come from the same sequence and are strongly correlated; training on them
in order biases every step towards one document. The buffer holds ``capacity`` rows; whenever it is
full it permutes them and emits the first half as batches, keeping the other half to mix with what
comes next. Same seed and same input rows give the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from sae_fast.validation import check_positive_int


class ShuffleBuffer:
    """Mix incoming ``[n, d]`` rows and emit ``[batch_size, d]`` batches (see the module docstring).

    ``capacity == 0`` disables mixing: rows are emitted in arrival order.
    """

    def __init__(self, capacity: int, batch_size: int, seed: int = 0) -> None:
        check_positive_int(batch_size, "batch_size")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or (0 < capacity < 2 * batch_size) or capacity < 0:
            raise ValueError(f"capacity must be 0 or an int >= 2 * batch_size ({2 * batch_size}), got {capacity!r}")
        self.capacity = capacity
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(int(seed))
        self._storage: Tensor | None = None
        self._filled = 0
        # Emit whole batches, about half the buffer each time it fills.
        self._emit_rows = max(batch_size, (capacity // 2) // batch_size * batch_size) if capacity else batch_size

    def _ensure_storage(self, rows: Tensor) -> Tensor:
        size = self.capacity or 2 * self.batch_size
        if self._storage is None:
            self._storage = rows.new_empty(size, rows.shape[1])
        elif rows.shape[1] != self._storage.shape[1] or rows.dtype != self._storage.dtype:
            raise ValueError(
                f"rows of shape {tuple(rows.shape)} / {rows.dtype} do not match earlier rows "
                f"(width {self._storage.shape[1]}, {self._storage.dtype})"
            )
        return self._storage

    def _permute_filled(self, storage: Tensor) -> None:
        if self.capacity:
            order = torch.randperm(self._filled, generator=self.generator).to(storage.device)
            storage[: self._filled] = storage[: self._filled][order]

    def _emit(self, storage: Tensor, n_rows: int) -> Iterator[Tensor]:
        out = storage[:n_rows].clone()
        remaining = self._filled - n_rows
        storage[:remaining] = storage[n_rows : self._filled].clone()
        self._filled = remaining
        yield from out.split(self.batch_size)

    def add(self, rows: Tensor) -> Iterator[Tensor]:
        """Take ``rows`` ``[n, d]``; yield every batch that becomes ready."""
        if rows.dim() != 2:
            raise ValueError(f"rows must be 2-D [n, d], got shape {tuple(rows.shape)}")
        storage = self._ensure_storage(rows)
        start = 0
        while start < rows.shape[0]:
            take = min(storage.shape[0] - self._filled, rows.shape[0] - start)
            storage[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == storage.shape[0]:
                self._permute_filled(storage)
                yield from self._emit(storage, self._emit_rows)

    def flush(self, drop_last: bool = True) -> Iterator[Tensor]:
        """Emit what is left (shuffled); the final partial batch only when ``drop_last`` is False."""
        if self._storage is None or self._filled == 0:
            return
        self._permute_filled(self._storage)
        n_full = self._filled // self.batch_size * self.batch_size
        n_out = self._filled if not drop_last else n_full
        if n_out:
            yield from self._emit(self._storage, n_out)
        self._filled = 0
