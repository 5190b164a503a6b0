"""Per-row scans of the Triton selections: count each row's kept entries, then write them as CSR.

Every scan walks ``BLOCK_R`` rows left to right, ``BLOCK_C`` columns at a time. A key cut keeps
the entries whose sort key (:func:`~sae_fast.kernels.triton_utils.positive_key`) is above the
row's cut, plus the row's tie budget of entries equal to it in column order (the reference's tie
rule); a threshold keeps the positive entries above their latent's threshold (no ties). Each mode
has its own kernel and launcher, so no launch passes a tensor it does not use.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.triton_interpreter import interpreting
from sae_fast.kernels.triton_utils import positive_key
from sae_fast.sparse_codes import SparseCodes

# Under the CPU interpreter every program costs milliseconds, so it gets fewer, wider row blocks;
# its column blocks stay small so that tests with small shapes still cross several of them.
if interpreting():
    _SCAN_ROWS, _SCAN_COLS = 16, 128
else:
    _SCAN_ROWS, _SCAN_COLS = 4, 512


@triton.jit
def load_columns(row_ptr, columns_ptr, cols, valid):
    """Entries ``cols`` of a row, or entries ``columns[cols]`` of a column subset (``columns_ptr``
    not None). Returns ``(values, latent ids)``; ``row_ptr`` may be 1-D (one row) or 2-D (row starts)."""
    if columns_ptr is not None:
        cols = tl.load(columns_ptr + cols, mask=valid, other=0)
    return tl.load(row_ptr + cols, mask=valid, other=0), cols


@triton.jit
def _row_block(pre_ptr, n, row_stride, BLOCK_R: tl.constexpr):
    """This program's rows: their ids, which of them exist, and their start pointers ``[BLOCK_R, 1]``."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    return rows, rows < n, pre_ptr + rows.to(tl.int64)[:, None] * row_stride


@triton.jit
def _above_and_tied(raw, valid, cut):
    """Entries whose key is above ``cut``, and entries whose key equals a positive ``cut``."""
    key = positive_key(raw.to(tl.float32))
    return valid & (key > cut), valid & (key == cut) & (key > 0)


@triton.jit
def _above_threshold(raw, valid, thr):
    v = raw.to(tl.float32)
    return valid & (v > thr) & (v > 0)


@triton.jit
def _store_kept(latent_out_ptr, value_out_ptr, raw, latents, keep, write_at):
    """Store a tile's kept entries from ``write_at`` (per row) on, in column order; return the next ``write_at``."""
    keep_i = keep.to(tl.int32)
    pos = write_at[:, None] + (tl.cumsum(keep_i, 1) - keep_i)
    tl.store(latent_out_ptr + pos, tl.zeros_like(pos) + latents, mask=keep)
    tl.store(value_out_ptr + pos, raw, mask=keep)
    return write_at + tl.sum(keep_i, 1)


@triton.jit
def _count_above_cut_kernel(
    pre_ptr, n, m, row_stride, cut_ptr, n_above_ptr, n_ties_ptr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr
):  # fmt: skip
    """Per row: entries whose key is above the batch's cut key ``cut_ptr[0]``, and entries equal to it."""
    rows, row_valid, row_ptr = _row_block(pre_ptr, n, row_stride, BLOCK_R)
    cut = tl.load(cut_ptr)
    n_above = tl.zeros([BLOCK_R], dtype=tl.int32)
    n_ties = tl.zeros([BLOCK_R], dtype=tl.int32)
    for start in range(0, m, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)[None, :]
        valid = row_valid[:, None] & (cols < m)
        above, tie = _above_and_tied(tl.load(row_ptr + cols, mask=valid, other=0), valid, cut)
        n_above += tl.sum(above.to(tl.int32), 1)
        n_ties += tl.sum(tie.to(tl.int32), 1)
    tl.store(n_above_ptr + rows, n_above, mask=row_valid)
    tl.store(n_ties_ptr + rows, n_ties, mask=row_valid)


@triton.jit
def _count_above_threshold_kernel(
    pre_ptr, n, m, row_stride, thr_ptr, thr_stride, n_above_ptr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr
):  # fmt: skip
    """Per row: positive entries above their latent's threshold (``thr_stride`` 0: one for all)."""
    rows, row_valid, row_ptr = _row_block(pre_ptr, n, row_stride, BLOCK_R)
    n_above = tl.zeros([BLOCK_R], dtype=tl.int32)
    for start in range(0, m, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        valid = row_valid[:, None] & (cols < m)[None, :]
        thr = tl.load(thr_ptr + cols * thr_stride, mask=cols < m, other=0)[None, :]
        raw = tl.load(row_ptr + cols[None, :], mask=valid, other=0)
        n_above += tl.sum(_above_threshold(raw, valid, thr).to(tl.int32), 1)
    tl.store(n_above_ptr + rows, n_above, mask=row_valid)


@triton.jit
def _write_above_cut_kernel(
    pre_ptr, n, m, row_stride, columns_ptr, cut_ptr, cut_stride, tie_budget_ptr, row_offsets_ptr,
    latent_out_ptr, value_out_ptr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Write each row's entries above its cut key plus its first ``tie_budget`` entries equal to
    it, at ``row_offsets``. ``m`` entries take part: the row, or the columns at ``columns_ptr``."""
    rows, row_valid, row_ptr = _row_block(pre_ptr, n, row_stride, BLOCK_R)
    cut = tl.load(cut_ptr + rows * cut_stride, mask=row_valid, other=0)[:, None]
    tie_budget = tl.load(tie_budget_ptr + rows, mask=row_valid, other=0)[:, None]
    write_at = tl.load(row_offsets_ptr + rows, mask=row_valid, other=0)
    n_ties = tl.zeros([BLOCK_R], dtype=tl.int32)
    for start in range(0, m, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)[None, :]
        valid = row_valid[:, None] & (cols < m)
        raw, latents = load_columns(row_ptr, columns_ptr, cols, valid)
        above, tie = _above_and_tied(raw, valid, cut)
        tie_i = tie.to(tl.int32)
        tie_rank = n_ties[:, None] + tl.cumsum(tie_i, 1) - tie_i  # earlier ties in the row
        keep = above | (tie & (tie_rank < tie_budget))
        write_at = _store_kept(latent_out_ptr, value_out_ptr, raw, latents, keep, write_at)
        n_ties += tl.sum(tie_i, 1)


@triton.jit
def _write_above_threshold_kernel(
    pre_ptr, n, m, row_stride, thr_ptr, thr_stride, row_offsets_ptr, latent_out_ptr, value_out_ptr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Write each row's positive entries above their latent's threshold at ``row_offsets``."""
    rows, row_valid, row_ptr = _row_block(pre_ptr, n, row_stride, BLOCK_R)
    write_at = tl.load(row_offsets_ptr + rows, mask=row_valid, other=0)
    for start in range(0, m, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        valid = row_valid[:, None] & (cols < m)[None, :]
        thr = tl.load(thr_ptr + cols * thr_stride, mask=cols < m, other=0)[None, :]
        raw = tl.load(row_ptr + cols[None, :], mask=valid, other=0)
        keep = _above_threshold(raw, valid, thr)
        write_at = _store_kept(latent_out_ptr, value_out_ptr, raw, cols.to(tl.int64)[None, :], keep, write_at)


def _scan_grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, _SCAN_ROWS),)


def _broadcast_stride(per_entry: Tensor) -> int:
    """0 when one value serves every row or latent, else 1."""
    return 0 if per_entry.numel() == 1 else 1


def count_above_cut(pre: Tensor, cut: Tensor) -> tuple[Tensor, Tensor]:
    """``(n_above, n_ties)`` int32 ``[n]`` of every row against the batch's cut key ``cut [1]``."""
    n, m = pre.shape
    n_above = torch.empty(n, dtype=torch.int32, device=pre.device)
    n_ties = torch.empty(n, dtype=torch.int32, device=pre.device)
    _count_above_cut_kernel[_scan_grid(n)](
        pre, n, m, m, cut, n_above, n_ties, BLOCK_R=_SCAN_ROWS, BLOCK_C=_SCAN_COLS
    )
    return n_above, n_ties


def count_above_threshold(pre: Tensor, threshold: Tensor) -> Tensor:
    """int32 ``[n]``: per row, the positive entries above ``threshold`` (float32 ``[1]`` or ``[m]``)."""
    n, m = pre.shape
    n_above = torch.empty(n, dtype=torch.int32, device=pre.device)
    _count_above_threshold_kernel[_scan_grid(n)](
        pre, n, m, m, threshold, _broadcast_stride(threshold), n_above, BLOCK_R=_SCAN_ROWS, BLOCK_C=_SCAN_COLS
    )
    return n_above


def _row_offsets(counts: Tensor) -> tuple[Tensor, int]:
    """CSR row offsets from per-row counts, and ``nnz`` (the one host sync: the output size)."""
    row_offsets = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, dim=0, out=row_offsets[1:])
    return row_offsets, int(row_offsets[-1].item())


def codes_above_cut(
    pre: Tensor, counts: Tensor, cut: Tensor, tie_budget: Tensor, columns: Tensor | None = None
) -> SparseCodes:
    """The entries above each row's cut key (``[1]`` for all rows or ``[n]``) plus its
    ``tie_budget`` of ties, among ``columns`` when given; ``counts`` is the kept count per row."""
    n, m = pre.shape
    row_offsets, nnz = _row_offsets(counts)
    latents = torch.empty(nnz, dtype=torch.int64, device=pre.device)
    values = torch.empty(nnz, dtype=pre.dtype, device=pre.device)
    _write_above_cut_kernel[_scan_grid(n)](
        pre, n, m if columns is None else columns.numel(), m, columns, cut, _broadcast_stride(cut),
        tie_budget, row_offsets, latents, values, BLOCK_R=_SCAN_ROWS, BLOCK_C=_SCAN_COLS,
    )  # fmt: skip
    return SparseCodes(row_offsets, latents, values, m)


def codes_above_threshold(pre: Tensor, counts: Tensor, threshold: Tensor) -> SparseCodes:
    n, m = pre.shape
    row_offsets, nnz = _row_offsets(counts)
    latents = torch.empty(nnz, dtype=torch.int64, device=pre.device)
    values = torch.empty(nnz, dtype=pre.dtype, device=pre.device)
    _write_above_threshold_kernel[_scan_grid(n)](
        pre, n, m, m, threshold, _broadcast_stride(threshold), row_offsets, latents, values,
        BLOCK_R=_SCAN_ROWS, BLOCK_C=_SCAN_COLS,
    )  # fmt: skip
    return SparseCodes(row_offsets, latents, values, m)
