"""Read an activation cache: memory-mapped rows, seeded shuffled batches, statistics.

``ActivationCacheReader(directory)`` opens a cache written by ``extract_activations`` read-only. Several
SAEs can train from one extraction, each with its own ``reader.batches(batch_size, seed=..., epochs=...)``
(a resumable ``sae_fast.training.data.ShuffledBatches`` over the memory map). Opening checks that the
files match the manifest (a truncated or inconsistent cache raises with a clear message) and, by default,
scans the rows for NaN/Inf, naming the offending rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_fast.activations.cache_format import ACTIVATIONS, TOKEN_DTYPE, TOKENS, check_files, read_manifest

_SCAN_ROWS = 65536


class ActivationCacheReader:
    """A finished (or, with ``allow_incomplete``, partial) activation cache.

    Attributes:
        manifest: the manifest dict (model, hook_name, seq_len, first_position, dtype, d_model, count, ...).
        activations: read-only ``np.memmap`` ``[num_rows, d_model]`` of the complete rows.
        tokens: read-only ``np.memmap`` int32 ``[num_sequences, seq_len]`` of their token ids.
    """

    def __init__(self, directory: str | Path, *, check_finite: bool = True, allow_incomplete: bool = False) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"activation cache directory {self.directory} does not exist")
        self.manifest: dict[str, Any] = read_manifest(self.directory)
        check_files(self.directory, self.manifest)
        if not self.manifest["complete"] and not allow_incomplete:
            raise ValueError(
                f"activation cache {self.directory} is incomplete ({self.manifest['count']} of "
                f"{self.manifest['capacity_sequences'] * self.manifest['rows_per_sequence']} rows); run "
                "extract_activations again with the same arguments to finish it, or pass allow_incomplete=True"
            )
        m = self.manifest
        capacity_rows = m["capacity_sequences"] * m["rows_per_sequence"]
        if m["count"] == 0:
            raise ValueError(f"activation cache {self.directory} holds no rows yet")
        full = np.memmap(self.directory / ACTIVATIONS, dtype=m["dtype"], mode="r", shape=(capacity_rows, m["d_model"]))
        self.activations = full[: m["count"]]
        tokens = np.memmap(self.directory / TOKENS, dtype=TOKEN_DTYPE, mode="r", shape=(m["capacity_sequences"], m["seq_len"]))
        self.tokens = tokens[: m["sequences"]]
        if check_finite:
            self.validate_finite()

    # --- description -------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return int(self.manifest["count"])

    @property
    def d_model(self) -> int:
        return int(self.manifest["d_model"])

    @property
    def hook_name(self) -> str:
        return str(self.manifest["hook_name"])

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"])

    @property
    def first_position(self) -> int:
        return int(self.manifest["first_position"])

    def __len__(self) -> int:
        return self.num_rows

    def row_origin(self, rows: np.ndarray | Tensor | int) -> tuple[np.ndarray, np.ndarray]:
        """``(sequence index, token position)`` of activation rows (for showing top-activating contexts)."""
        rows = np.asarray(rows.cpu() if isinstance(rows, Tensor) else rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError(f"rows must be in [0, {self.num_rows}), got min {rows.min()} max {rows.max()}")
        per = self.manifest["rows_per_sequence"]
        return rows // per, rows % per + self.first_position

    # --- data ----------------------------------------------------------------------------------------
    def rows(self, start: int = 0, stop: int | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Rows ``start:stop`` in storage (sequence) order as a torch tensor."""
        return torch.from_numpy(np.array(self.activations[start:stop])).to(dtype)  # a copy: the map is read-only

    def batches(
        self, batch_size: int, *, seed: int = 0, epochs: int | None = 1, shuffle: bool = True,
        dtype: torch.dtype = torch.float32, rank: int = 0, world_size: int = 1,
    ) -> Any:
        """Seeded shuffled ``[batch_size, d_model]`` batches over ``epochs`` (None = endless).

        Returns a resumable ``sae_fast.training.data.ShuffledBatches`` (``state_dict`` / ``load_state_dict``);
        epoch ``e`` uses its own permutation derived from ``(seed, e)``, and the incomplete tail batch of
        each epoch is dropped so every step has the same BatchTopK budget.
        """
        from sae_fast.training.data import ShuffledBatches

        return ShuffledBatches(self.activations, batch_size, seed=seed, epochs=epochs, shuffle=shuffle,
                               rank=rank, world_size=world_size, dtype=dtype)

    def sample(self, n: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` distinct rows chosen uniformly with ``seed`` (e.g. to initialise ``b_dec``)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.num_rows:
            raise ValueError(f"n must be an int in [1, {self.num_rows}], got {n!r}")
        generator = np.random.default_rng(seed)
        rows = np.sort(generator.choice(self.num_rows, size=n, replace=False))
        return torch.from_numpy(np.ascontiguousarray(self.activations[rows])).to(dtype)

    def mean(self) -> Tensor:
        """Mean activation ``[d_model]`` (float32, accumulated in float64), e.g. for mean ablation."""
        total = np.zeros(self.d_model, dtype=np.float64)
        for start in range(0, self.num_rows, _SCAN_ROWS):
            total += self.activations[start : start + _SCAN_ROWS].astype(np.float64).sum(axis=0)
        return torch.from_numpy(total / self.num_rows).float()

    def validate_finite(self) -> None:
        """Raise ValueError naming the rows (and their sequence, position) that hold NaN or Inf."""
        bad: list[int] = []
        for start in range(0, self.num_rows, _SCAN_ROWS):
            chunk = self.activations[start : start + _SCAN_ROWS]
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                bad.extend((np.flatnonzero(~finite) + start).tolist())
        if bad:
            sequences, positions = self.row_origin(np.asarray(bad[:5]))
            raise ValueError(
                f"activation cache {self.directory} has NaN/Inf in {len(bad)} row(s), first rows {bad[:5]} "
                f"(sequence, position) = {list(zip(sequences.tolist(), positions.tolist()))}; extract again, "
                "with cache_dtype='float32' if float16 overflowed"
            )
