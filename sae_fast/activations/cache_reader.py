"""Read an activation cache: memory-mapped rows of one split, seeded shuffled batches, statistics.

``ActivationCacheReader(directory, split="train")`` opens a cache written by ``extract_activations``
read-only. Several SAEs can train from one extraction, each with its own
``reader.batches(batch_size, seed=..., epochs=...)`` (a resumable ``ShuffledBatches`` over the memory
map). Opening checks that the files match the manifest (a truncated or inconsistent cache raises with a
clear message) and, by default, scans the split's rows for NaN/Inf, naming the offending rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_fast.activations.cache_format import (
    ACTIVATIONS,
    NORM_DTYPE,
    NORMS,
    SPLITS,
    TOKEN_DTYPE,
    TOKENS,
    check_files,
    content_fingerprint,
    manifest_field,
    read_manifest,
    row_norms,
    split_sequences,
)
from sae_fast.activations.config import check_norm_ratio
from sae_fast.activations.shuffled_batches import ShuffledBatches
from sae_fast.validation import check_positive_int

_SCAN_ROWS = 65536


class ActivationCacheReader:
    """One split of a finished (or, with ``allow_incomplete``, partial) activation cache.

    ``ActivationCacheReader(directory, split="train", max_norm_ratio=None)``; everything below describes
    the chosen split, so training code can never reach held-out rows by accident.

    Args:
        split: ``"train"`` (default: every sequence but the held-out ones), ``"heldout"`` (the last
            ``manifest["heldout_sequences"]`` sequences, for evaluation) or ``"all"``. Caches written
            before held-out splits existed are all ``"train"``; their ``"heldout"`` split is empty and
            raises.
        max_norm_ratio: drop rows whose L2 norm exceeds this multiple of the median row norm of the
            whole cache (attention sinks; one threshold for every split). None keeps every row.
            Dropped rows stay in ``activations`` (row numbers keep meaning ``row_origin``) but
            ``batches``, ``sample``, ``mean`` and ``kept_activations`` skip them.
        check_finite: scan the split's rows for NaN/Inf on opening.
        allow_incomplete: open a cache whose extraction has not finished (its complete rows).

    Attributes:
        manifest: the manifest dict (model, hook_name, seq_len, first_position, dtype, d_model, count,
            heldout_sequences, fingerprint, ...; see ``cache_format``).
        split: the split read.
        activations: read-only ``np.memmap`` ``[num_rows, d_model]`` of the split's rows, in storage order.
        tokens: read-only ``np.memmap`` int32 ``[num_sequences, seq_len]`` of the split's token ids;
            ``row_origin`` maps a row of ``activations`` to ``(row of tokens, position)``.
        first_sequence: index of the split's first sequence in the whole cache.
        kept_rows: sorted int64 indices into ``activations`` that pass the sink filter, or None when
            nothing is filtered.

    ``num_rows``, ``num_sequences``, ``fingerprint``, ``identity()`` and ``sink_filter_stats()``
    describe the cache for metadata and checkpoints.
    """

    def __init__(
        self, directory: str | Path, *, split: str = "train", max_norm_ratio: float | None = None,
        check_finite: bool = True, allow_incomplete: bool = False,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"activation cache directory {self.directory} does not exist")
        check_norm_ratio(max_norm_ratio)
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
        first, stop = split_sequences(m, split)
        if first == stop:
            raise ValueError(
                f"activation cache {self.directory} has no {split!r} rows (heldout_sequences="
                f"{manifest_field(m, 'heldout_sequences')} of {m['sequences']} sequences"
                + ("; it was extracted before held-out splits existed, so all its rows are training rows"
                   if "heldout_sequences" not in m else "") + "); choose another split, e.g. split='all'"
            )
        self.split = split
        self.first_sequence = first
        per = m["rows_per_sequence"]
        full = np.memmap(self.directory / ACTIVATIONS, dtype=m["dtype"], mode="r", shape=(capacity_rows, m["d_model"]))
        self._all_activations = full[: m["count"]]
        self.activations = full[first * per : stop * per]
        tokens = np.memmap(self.directory / TOKENS, dtype=TOKEN_DTYPE, mode="r", shape=(m["capacity_sequences"], m["seq_len"]))
        self._all_tokens = tokens[: m["sequences"]]
        self.tokens = tokens[first:stop]
        self._norms: np.ndarray | None = None
        self._fingerprint: str | None = m.get("fingerprint") if m["complete"] else None
        self.max_norm_ratio = None if max_norm_ratio is None else float(max_norm_ratio)
        self.kept_rows: np.ndarray | None = None
        self._median_norm: float | None = None
        if self.max_norm_ratio is not None:
            norms = self.all_row_norms()
            self._median_norm = float(np.median(norms))
            split_norms = norms[first * per : stop * per]
            self.kept_rows = np.flatnonzero(split_norms <= self.max_norm_ratio * self._median_norm)
            if self.kept_rows.size == 0:
                raise ValueError(f"max_norm_ratio={max_norm_ratio} drops every row of the {split!r} split")
        if check_finite:
            self.validate_finite()

    # --- description -------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Rows of the split (including rows the sink filter drops; see ``num_kept_rows``)."""
        return int(self.activations.shape[0])

    @property
    def num_kept_rows(self) -> int:
        """Rows the split serves after the sink filter."""
        return self.num_rows if self.kept_rows is None else int(self.kept_rows.size)

    @property
    def num_sequences(self) -> int:
        return int(self.tokens.shape[0])

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
    def model_source(self) -> str:
        """The name ``load_model`` / ``sae-fast --model`` takes to load the cache's model again.

        Caches written before the manifest recorded it fall back to the label; the SmolLM2 Hub label
        maps to the offline GGUF, the only SmolLM2 those versions could extract without the network.
        """
        from sae_fast.activations.models import OFFLINE_DEFAULT_MODEL, SMOLLM2_HUB_NAME

        source = self.manifest.get("model_source")
        if source:
            return str(source)
        return OFFLINE_DEFAULT_MODEL if self.model_name == SMOLLM2_HUB_NAME else self.model_name

    @property
    def first_position(self) -> int:
        return int(self.manifest["first_position"])

    @property
    def fingerprint(self) -> str:
        """``cache_format.content_fingerprint`` of the whole cache (computed once for older caches)."""
        if self._fingerprint is None:
            self._fingerprint = content_fingerprint(self._all_tokens, self._all_activations)
        return self._fingerprint

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records about its training data; a resume refuses any differing field."""
        m = self.manifest
        return {"model": m["model"], "hook_name": m["hook_name"], "d_model": m["d_model"], "dtype": m["dtype"],
                "count": self.num_rows, "fingerprint": self.fingerprint, "split": self.split,
                "max_norm_ratio": self.max_norm_ratio}

    def all_row_norms(self) -> np.ndarray:
        """float32 L2 norm of every complete row of the cache (all splits), from ``norms.bin`` or computed
        once and kept in memory for caches written without it."""
        if self._norms is None:
            m = self.manifest
            if manifest_field(m, "row_norms"):
                stored = np.memmap(self.directory / NORMS, dtype=NORM_DTYPE, mode="r")
                self._norms = stored[: m["count"]]
            else:
                rows = self._all_activations
                self._norms = np.concatenate(
                    [row_norms(rows[i : i + _SCAN_ROWS]) for i in range(0, rows.shape[0], _SCAN_ROWS)]
                )
        return self._norms

    def sink_filter_stats(self) -> dict[str, Any]:
        """The sink filter applied: ratio, median norm, threshold, rows of the split and rows dropped."""
        stats: dict[str, Any] = {"max_norm_ratio": self.max_norm_ratio, "split_rows": self.num_rows,
                                 "excluded_rows": self.num_rows - self.num_kept_rows}
        if self._median_norm is not None:
            stats.update(median_norm=self._median_norm, threshold=self.max_norm_ratio * self._median_norm,
                         excluded_fraction=stats["excluded_rows"] / self.num_rows)
        return stats

    def __len__(self) -> int:
        return self.num_rows

    def row_origin(self, rows: np.ndarray | Tensor | int) -> tuple[np.ndarray, np.ndarray]:
        """``(row of tokens, token position)`` of rows of ``activations`` (for top-activating contexts).

        Sequences are counted within the split (add ``first_sequence`` for the whole cache).
        """
        rows = np.asarray(rows.cpu() if isinstance(rows, Tensor) else rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_rows):
            raise IndexError(f"rows must be in [0, {self.num_rows}), got min {rows.min()} max {rows.max()}")
        per = self.manifest["rows_per_sequence"]
        return rows // per, rows % per + self.first_position

    # --- data ----------------------------------------------------------------------------------------
    def rows(self, start: int = 0, stop: int | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Rows ``start:stop`` of ``activations`` in storage (sequence) order, unfiltered, as a tensor."""
        return torch.from_numpy(np.array(self.activations[start:stop])).to(dtype)  # a copy: the map is read-only

    def kept_activations(self, max_rows: int | None = None) -> np.ndarray:
        """The first ``max_rows`` rows that pass the sink filter, in storage order: the memory map itself
        when nothing is filtered, else a copy (e.g. for ``sae_fast.evaluation.evaluate``)."""
        if self.kept_rows is None:
            return self.activations[:max_rows]
        return self.activations[self.kept_rows[:max_rows]]

    def batches(
        self, batch_size: int, *, seed: int = 0, epochs: int | None = 1, shuffle: bool = True,
        dtype: torch.dtype = torch.float32, rank: int = 0, world_size: int = 1,
    ) -> ShuffledBatches:
        """Seeded shuffled ``[batch_size, d_model]`` batches over ``epochs`` (None = endless).

        Returns a resumable :class:`ShuffledBatches` (``state_dict`` / ``load_state_dict``);
        epoch ``e`` uses its own permutation derived from ``(seed, e)``, and the incomplete tail batch of
        each epoch is dropped so every step has the same BatchTopK budget.
        """
        return ShuffledBatches(self.activations, batch_size, seed=seed, epochs=epochs, shuffle=shuffle,
                               rank=rank, world_size=world_size, dtype=dtype, rows=self.kept_rows)

    def sample(self, n: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` distinct rows chosen uniformly with ``seed`` (e.g. to initialise ``b_dec``)."""
        check_positive_int(n, "n", upper=self.num_kept_rows, upper_name="the rows of the split")
        generator = np.random.default_rng(seed)
        rows = np.sort(generator.choice(self.num_kept_rows, size=n, replace=False))
        if self.kept_rows is not None:
            rows = self.kept_rows[rows]
        return torch.from_numpy(np.ascontiguousarray(self.activations[rows])).to(dtype)

    def mean(self) -> Tensor:
        """Mean kept activation ``[d_model]`` (float32, accumulated in float64), e.g. for mean ablation."""
        total = np.zeros(self.d_model, dtype=np.float64)
        for start in range(0, self.num_rows, _SCAN_ROWS):
            chunk = self.activations[start : start + _SCAN_ROWS]
            if self.kept_rows is not None:
                kept = self.kept_rows[(self.kept_rows >= start) & (self.kept_rows < start + _SCAN_ROWS)]
                chunk = chunk[kept - start]
            total += chunk.astype(np.float64).sum(axis=0)
        return torch.from_numpy(total / self.num_kept_rows).float()

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
                f"activation cache {self.directory} ({self.split!r} split) has NaN/Inf in {len(bad)} row(s), "
                f"first rows {bad[:5]} "
                f"(sequence, position) = {list(zip(sequences.tolist(), positions.tolist()))}; extract again, "
                "with cache_dtype='float32' if float16 overflowed"
            )
