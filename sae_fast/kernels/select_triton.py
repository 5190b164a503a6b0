"""Triton selection kernels: batch top-k, per-row top-k and threshold selection without sorting.

Same contract as :mod:`sae_fast.kernels.select_reference` (kept set, tie rule and canonical CSR
order are identical, so results compare element by element).

Why radix select: a BatchTopK batch keeps ``n * k`` of ``n * d_sae`` pre-activations (0.1 % at the
paper sizes). Sorting or ``torch.topk`` over all of them is the dominant cost of the selection; an
exact radix select needs only a few streaming passes. A strictly positive float32's bit pattern,
read as an int32, is monotone in its value, so the k-th largest value is found digit by digit
(4 passes of 8 bits, most significant first) from histograms of the entries whose higher digits
match the prefix found so far. Everything that is not strictly positive gets key 0, which can
never be kept (NaN is therefore treated as an inactive latent).

Once the exact cut key ``t`` and the number of entries equal to ``t`` that still fit (``ties``)
are known, a per-row scan counts entries ``> t`` and ``== t``; ties are admitted in row-major order
(the reference's tie rule) via an exclusive cumsum over rows; a second per-row scan writes CSR in
ascending latent order. Only one host sync happens: reading ``nnz`` to allocate the output.

bfloat16 / float16 inputs are selected on their values as given (widened to float32 inside the
kernels, which preserves order and equality exactly); output values keep the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.select_reference import check_latent_subset
from sae_fast.sparse_codes import SparseCodes

DIGIT_BITS = 8
NUM_BINS = 1 << DIGIT_BITS
RADIX_SHIFTS = (24, 16, 8, 0)  # most significant digit first; bit 31 (sign) is always 0 in a key
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return bool(triton.knobs.runtime.interpret)


# Block sizes. Under the CPU interpreter every program and every reduction costs milliseconds, so
# it gets fewer, wider row blocks; its column blocks stay small so that tests with small shapes
# still exercise the multi-step loops and the ragged edges.
if interpreting():
    _HIST_BLOCK, _HIST_MAX_PROGRAMS = 1024, 4
    _SCAN_ROWS, _SCAN_COLS = 16, 128
    _ROW_SELECT_COLS = 128
else:
    _HIST_BLOCK = 2048  # entries per histogram step
    _HIST_MAX_PROGRAMS = 1024  # bounds the per-program atomic flushes of the histogram
    _SCAN_ROWS, _SCAN_COLS = 4, 512  # tile of the per-row scans
    _ROW_SELECT_COLS = 1024  # columns per step of the per-row radix select


def check_kernel_tensor(name: str, t: Tensor) -> None:
    """Reject tensors a Triton kernel cannot read: CPU tensors need the interpreter."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"{name} is on {t.device}; the Triton kernels need CUDA tensors "
            "(or TRITON_INTERPRET=1 set before importing them, to test on CPU)"
        )


def _check_pre(pre: Tensor) -> Tensor:
    check_kernel_tensor("pre", pre)
    if pre.dim() != 2:
        raise ValueError(f"pre must be 2-D [n_tokens, d_sae], got shape {tuple(pre.shape)}")
    if pre.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"pre must be float32, float16 or bfloat16, got {pre.dtype}")
    return pre.contiguous()


def check_budget(name: str, budget: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"{name} must be an int, got {type(budget).__name__}")
    if budget < 0:
        raise ValueError(f"{name} must be >= 0, got {budget}")
    return budget


def _empty_codes(pre: Tensor) -> SparseCodes:
    n, m = pre.shape
    return SparseCodes(
        torch.zeros(n + 1, dtype=torch.int64, device=pre.device),
        torch.zeros(0, dtype=torch.int64, device=pre.device),
        pre.new_zeros(0),
        m,
    )


# ----------------------------------------------------------------------------------------------
# Shared device helpers
# ----------------------------------------------------------------------------------------------


@triton.jit
def positive_key(v):
    """float32 -> int32 sort key: monotone for v > 0, and 0 for everything else (never kept)."""
    return tl.where(v > 0, v.to(tl.int32, bitcast=True), 0)


@triton.jit
def digit_histogram(key, valid, prefix, SHIFT: tl.constexpr, NUM_BINS: tl.constexpr):
    """Histogram of the digit at ``SHIFT`` over valid keys whose higher digits equal ``prefix``'s."""
    match = valid
    if SHIFT + 8 < 32:  # the first digit has no higher digits to match
        match = match & ((key >> (SHIFT + 8)) == (prefix >> (SHIFT + 8)))
    return tl.histogram((key >> SHIFT) & (NUM_BINS - 1), NUM_BINS, mask=match)


@triton.jit
def refine_prefix(hist, prefix, rank, SHIFT: tl.constexpr, NUM_BINS: tl.constexpr):
    """Fix the digit at ``SHIFT`` of the ``rank``-th largest (1-based) matched key.

    ``hist`` counts the matched keys by that digit. Returns the extended prefix and the rank of
    the target among the keys that also match the new digit.
    """
    hist = hist.to(tl.int64)
    bins = tl.arange(0, NUM_BINS)
    at_or_below = tl.cumsum(hist, 0)
    total = tl.sum(hist, 0)
    at_or_above = total - at_or_below + hist
    digit = tl.sum((at_or_above >= rank).to(tl.int32), 0) - 1
    above = total - tl.sum(tl.where(bins == digit, at_or_below, 0), 0)
    return prefix | (digit << SHIFT), rank - above


# ----------------------------------------------------------------------------------------------
# Batch top-k: global histograms refined on device
# ----------------------------------------------------------------------------------------------


@triton.jit
def _batch_histogram_kernel(
    pre_ptr,
    numel,
    blocks_per_program,
    state_ptr,  # int64 [2]: (prefix, rank)
    hist_ptr,  # int64 [NUM_BINS], zeroed
    SHIFT: tl.constexpr,
    NUM_BINS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    prefix = tl.load(state_ptr).to(tl.int32)
    hist = tl.zeros([NUM_BINS], dtype=tl.int32)
    first_block = pid.to(tl.int64) * blocks_per_program
    for i in range(0, blocks_per_program):
        offs = (first_block + i) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < numel
        key = positive_key(tl.load(pre_ptr + offs, mask=valid, other=0).to(tl.float32))
        hist += digit_histogram(key, valid, prefix, SHIFT, NUM_BINS)
    # Skipping empty bins matters on GPU: values crowd into a few exponent bins, so most of the
    # NUM_BINS global atomics would add zero.
    tl.atomic_add(hist_ptr + tl.arange(0, NUM_BINS), hist.to(tl.int64), mask=hist > 0)


@triton.jit
def _batch_refine_kernel(hist_ptr, state_ptr, SHIFT: tl.constexpr, NUM_BINS: tl.constexpr):
    hist = tl.load(hist_ptr + tl.arange(0, NUM_BINS))
    prefix = tl.load(state_ptr).to(tl.int32)
    rank = tl.load(state_ptr + 1)
    prefix, rank = refine_prefix(hist, prefix, rank, SHIFT, NUM_BINS)
    tl.store(state_ptr, prefix.to(tl.int64))
    tl.store(state_ptr + 1, rank)


# ----------------------------------------------------------------------------------------------
# Per-row scans: counting and CSR compaction (shared by all three selections)
# ----------------------------------------------------------------------------------------------


@triton.jit
def load_columns(row_ptr, columns_ptr, cols, valid, GATHER: tl.constexpr):
    """Entries ``cols`` of a row, or entries ``columns[cols]`` when GATHER (a column subset).

    Returns ``(values, latent ids)``; ``row_ptr`` may be 1-D (one row) or 2-D (row starts)."""
    if GATHER:
        cols = tl.load(columns_ptr + cols, mask=valid, other=0)
    return tl.load(row_ptr + cols, mask=valid, other=0), cols


@triton.jit
def _scan_rows_kernel(
    pre_ptr,
    n,
    m,  # entries scanned per row: d_sae, or the length of `columns`
    row_stride,
    columns_ptr,  # int64 [m]: the column subset; GATHER mode
    cut_ptr,  # int32 key cut per row (stride cut_stride); key mode
    cut_stride,
    thr_ptr,  # float32 threshold per latent (stride thr_stride); threshold mode
    thr_stride,
    tie_budget_ptr,  # int64 [n]: entries == cut this row may keep; write mode, key mode
    row_offsets_ptr,  # int64 [n + 1]; write mode
    n_above_ptr,  # int32 [n]: entries above the cut; count mode
    n_ties_ptr,  # int32 [n]: entries equal to a positive cut; count mode
    latent_out_ptr,  # int64 [nnz]; write mode
    value_out_ptr,  # pre.dtype [nnz]; write mode
    BY_THRESHOLD: tl.constexpr,
    WRITE: tl.constexpr,
    GATHER: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Walk BLOCK_R rows left to right; count kept entries, or write them in ascending latent order."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_valid = rows < n
    row_start = rows.to(tl.int64) * row_stride
    cut = tl.load(cut_ptr + rows * cut_stride, mask=row_valid, other=0)
    tie_budget = tl.zeros([BLOCK_R], dtype=tl.int64)
    write_at = tl.zeros([BLOCK_R], dtype=tl.int64)
    if WRITE:
        write_at = tl.load(row_offsets_ptr + rows, mask=row_valid, other=0)
        if not BY_THRESHOLD:
            tie_budget = tl.load(tie_budget_ptr + rows, mask=row_valid, other=0)
    n_above = tl.zeros([BLOCK_R], dtype=tl.int32)
    n_ties = tl.zeros([BLOCK_R], dtype=tl.int32)
    for start in range(0, m, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        valid = row_valid[:, None] & (cols < m)[None, :]
        raw, latents = load_columns(pre_ptr + row_start[:, None], columns_ptr, cols[None, :], valid, GATHER)
        v = raw.to(tl.float32)
        if BY_THRESHOLD:
            thr = tl.load(thr_ptr + cols * thr_stride, mask=cols < m, other=0)
            above = valid & (v > thr[None, :]) & (v > 0)
            tie = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.int1)  # no budget, hence no ties
        else:
            key = positive_key(v)
            above = valid & (key > cut[:, None])
            tie = valid & (key == cut[:, None]) & (key > 0)
        above_i = above.to(tl.int32)
        tie_i = tie.to(tl.int32)
        if WRITE:
            tie_rank = n_ties[:, None] + tl.cumsum(tie_i, 1) - tie_i  # earlier ties in the row
            keep = above | (tie & (tie_rank < tie_budget[:, None]))
            keep_i = keep.to(tl.int32)
            pos = write_at[:, None] + (tl.cumsum(keep_i, 1) - keep_i)
            latents_2d = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.int64) + latents
            tl.store(latent_out_ptr + pos, latents_2d, mask=keep)
            tl.store(value_out_ptr + pos, raw, mask=keep)
            write_at += tl.sum(keep_i, 1)
        n_above += tl.sum(above_i, 1)
        n_ties += tl.sum(tie_i, 1)
    if not WRITE:
        tl.store(n_above_ptr + rows, n_above, mask=row_valid)
        tl.store(n_ties_ptr + rows, n_ties, mask=row_valid)


def _scan_rows(
    pre: Tensor,
    *,
    cut: Tensor | None = None,
    threshold: Tensor | None = None,
    tie_budget: Tensor | None = None,
    row_offsets: Tensor | None = None,
    nnz: int = 0,
    columns: Tensor | None = None,
):
    """Count mode (``row_offsets is None``): returns ``(n_above, n_ties)`` int32 ``[n]``.
    Write mode: returns ``(latent_indices, values)`` of length ``nnz`` in canonical CSR order.
    With ``columns`` only those columns of ``pre`` take part."""
    n, m = pre.shape
    dev = pre.device
    dummy_i32 = torch.zeros(1, dtype=torch.int32, device=dev)
    dummy_i64 = torch.zeros(1, dtype=torch.int64, device=dev)
    dummy_f32 = torch.zeros(1, dtype=torch.float32, device=dev)
    by_threshold = threshold is not None
    write = row_offsets is not None
    if write:
        latents = torch.empty(nnz, dtype=torch.int64, device=dev)
        values = torch.empty(nnz, dtype=pre.dtype, device=dev)
        a, b = latents, values
    else:
        a = torch.empty(n, dtype=torch.int32, device=dev)
        b = torch.empty(n, dtype=torch.int32, device=dev)
    _scan_rows_kernel[(triton.cdiv(n, _SCAN_ROWS),)](
        pre,
        n,
        m if columns is None else columns.numel(),
        m,
        columns if columns is not None else dummy_i64,
        cut if cut is not None else dummy_i32,
        0 if cut is None or cut.numel() == 1 else 1,
        threshold if by_threshold else dummy_f32,
        0 if not by_threshold or threshold.numel() == 1 else 1,
        tie_budget if tie_budget is not None else dummy_i64,
        row_offsets if write else dummy_i64,
        dummy_i32 if write else a,
        dummy_i32 if write else b,
        a if write else dummy_i64,
        b if write else pre,
        BY_THRESHOLD=by_threshold,
        WRITE=write,
        GATHER=columns is not None,
        BLOCK_R=_SCAN_ROWS,
        BLOCK_C=_SCAN_COLS,
    )
    return a, b


def _codes_from_counts(
    pre: Tensor,
    counts: Tensor,
    *,
    cut: Tensor | None = None,
    threshold: Tensor | None = None,
    tie_budget: Tensor | None = None,
    columns: Tensor | None = None,
) -> SparseCodes:
    n, m = pre.shape
    row_offsets = torch.zeros(n + 1, dtype=torch.int64, device=pre.device)
    torch.cumsum(counts, dim=0, out=row_offsets[1:])
    nnz = int(row_offsets[-1].item())  # the one host sync: the output size
    latents, values = _scan_rows(
        pre, cut=cut, threshold=threshold, tie_budget=tie_budget, row_offsets=row_offsets, nnz=nnz,
        columns=columns,
    )  # fmt: skip
    return SparseCodes(row_offsets, latents, values, m)


# ----------------------------------------------------------------------------------------------
# Public selections
# ----------------------------------------------------------------------------------------------


def batch_radix_cut(pre: Tensor, k_total: int, top_digit_histogram: Tensor | None = None) -> Tensor:
    """Device tensor int64 ``[2]``: the key of the ``k_total``-th largest entry and its rank
    among the entries with that key (``1 <= k_total <= pre.numel()``).

    ``top_digit_histogram`` (int64 ``[NUM_BINS]``) may carry the first pass's histogram when a
    producer (the fused encoder) already computed it.
    """
    numel = pre.numel()
    state = torch.tensor([0, k_total], dtype=torch.int64, device=pre.device)
    hists = torch.zeros(len(RADIX_SHIFTS), NUM_BINS, dtype=torch.int64, device=pre.device)
    n_blocks = triton.cdiv(numel, _HIST_BLOCK)
    n_programs = min(n_blocks, _HIST_MAX_PROGRAMS)
    blocks_per_program = triton.cdiv(n_blocks, n_programs)
    for p, shift in enumerate(RADIX_SHIFTS):
        if p == 0 and top_digit_histogram is not None:
            hists[0].copy_(top_digit_histogram)
        else:
            _batch_histogram_kernel[(n_programs,)](
                pre, numel, blocks_per_program, state, hists[p],
                SHIFT=shift, NUM_BINS=NUM_BINS, BLOCK=_HIST_BLOCK,
            )  # fmt: skip
        _batch_refine_kernel[(1,)](hists[p], state, SHIFT=shift, NUM_BINS=NUM_BINS)
    return state


def batch_topk_select(pre: Tensor, k_total: int) -> SparseCodes:
    """Keep the ``k_total`` largest strictly positive entries of the whole batch ``pre [n, d_sae]``."""
    pre = _check_pre(pre)
    k_total = check_budget("k_total", k_total)
    return batch_topk_select_with_histogram(pre, k_total, None)


def batch_topk_select_with_histogram(
    pre: Tensor, k_total: int, top_digit_histogram: Tensor | None
) -> SparseCodes:
    """:func:`batch_topk_select` on checked input, optionally reusing the first radix histogram."""
    if k_total == 0 or pre.numel() == 0:
        return _empty_codes(pre)
    state = batch_radix_cut(pre, min(k_total, pre.numel()), top_digit_histogram)
    cut = state[:1].to(torch.int32)
    # A zero cut means fewer positives than the budget: keep them all, admit no ties.
    ties_allowed = torch.where(cut > 0, state[1:], 0)
    n_above, n_ties = _scan_rows(pre, cut=cut)
    n_ties = n_ties.to(torch.int64)
    ties_before = torch.cumsum(n_ties, 0) - n_ties
    tie_budget = torch.minimum((ties_allowed - ties_before).clamp_(min=0), n_ties)
    return _codes_from_counts(pre, n_above + tie_budget, cut=cut, tie_budget=tie_budget)


@triton.jit
def _row_radix_pass(
    row_ptr, columns_ptr, m, prefix, rank, SHIFT: tl.constexpr, GATHER: tl.constexpr, BLOCK: tl.constexpr
):  # fmt: skip
    hist = tl.zeros([256], dtype=tl.int32)
    for start in range(0, m, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        valid = cols < m
        v, _ = load_columns(row_ptr, columns_ptr, cols, valid, GATHER)
        hist += digit_histogram(positive_key(v.to(tl.float32)), valid, prefix, SHIFT, 256)
    return refine_prefix(hist, prefix, rank, SHIFT, 256)


@triton.jit
def _row_topk_cut_kernel(
    pre_ptr, m, row_stride, columns_ptr, k, cut_ptr, tie_budget_ptr, count_ptr,
    GATHER: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Per row: the key of its k-th largest entry, how many entries equal to it are kept, and the
    row's kept count (k, or the number of positives if there are fewer). ``m`` entries take part:
    the whole row, or the columns listed at ``columns_ptr`` when GATHER."""
    row = tl.program_id(0)
    row_ptr = pre_ptr + row.to(tl.int64) * row_stride
    # Scalars derived from `row` so they are tensors of a fixed type from the start (k == 1 is
    # specialised to a constexpr by Triton).
    n_positive = row * 0
    for start in range(0, m, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        v, _ = load_columns(row_ptr, columns_ptr, cols, cols < m, GATHER)
        n_positive += tl.sum((v.to(tl.float32) > 0).to(tl.int32), 0)
    prefix = row * 0
    rank = row.to(tl.int64) * 0 + k
    prefix, rank = _row_radix_pass(row_ptr, columns_ptr, m, prefix, rank, 24, GATHER, BLOCK)
    prefix, rank = _row_radix_pass(row_ptr, columns_ptr, m, prefix, rank, 16, GATHER, BLOCK)
    prefix, rank = _row_radix_pass(row_ptr, columns_ptr, m, prefix, rank, 8, GATHER, BLOCK)
    prefix, rank = _row_radix_pass(row_ptr, columns_ptr, m, prefix, rank, 0, GATHER, BLOCK)
    tl.store(cut_ptr + row, prefix)
    tl.store(tie_budget_ptr + row, tl.where(prefix > 0, rank, 0))
    tl.store(count_ptr + row, tl.where(prefix > 0, k, n_positive.to(tl.int64)))


def topk_select(pre: Tensor, k: int) -> SparseCodes:
    """Keep the ``k`` largest strictly positive entries of every row of ``pre [n, d_sae]``."""
    pre = _check_pre(pre)
    return row_topk(pre, check_budget("k", k), None)


def subset_topk_select(pre: Tensor, latents: Tensor, k: int) -> SparseCodes:
    """Per row, keep the ``k`` largest positive entries among the columns ``latents`` (ascending
    int64), reading those columns in place: no masked copy of ``pre``, no pass over the others."""
    pre = _check_pre(pre)
    latents = check_latent_subset(latents, pre.shape[1], pre.device)
    return row_topk(pre, check_budget("k", k), latents)


def row_topk(pre: Tensor, k: int, columns: Tensor | None) -> SparseCodes:
    """Per-row top-k of a contiguous ``pre``, over ``columns`` when given (inputs already checked)."""
    n, m = pre.shape
    width = m if columns is None else columns.numel()
    if k == 0 or n == 0 or width == 0:
        return _empty_codes(pre)
    k = min(k, width)
    cut = torch.empty(n, dtype=torch.int32, device=pre.device)
    tie_budget = torch.empty(n, dtype=torch.int64, device=pre.device)
    counts = torch.empty(n, dtype=torch.int64, device=pre.device)
    _row_topk_cut_kernel[(n,)](
        pre, width, m, columns if columns is not None else counts, k, cut, tie_budget, counts,
        GATHER=columns is not None, BLOCK=_ROW_SELECT_COLS,
    )  # fmt: skip
    return _codes_from_counts(pre, counts, cut=cut, tie_budget=tie_budget, columns=columns)


def threshold_select(pre: Tensor, threshold: Tensor | float) -> SparseCodes:
    """JumpReLU selection: keep entries strictly above ``threshold`` (scalar or ``[d_sae]``) and > 0."""
    pre = _check_pre(pre)
    n, m = pre.shape
    if isinstance(threshold, Tensor):
        if threshold.numel() != 1 and tuple(threshold.shape) != (m,):
            raise ValueError(
                f"threshold must be a scalar or have shape ({m},) (one per latent), "
                f"got {tuple(threshold.shape)}"
            )
        threshold = threshold.detach().to(pre.device)
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        pass
    else:
        raise TypeError(f"threshold must be a float or a Tensor, got {type(threshold).__name__}")
    # Round to pre's dtype first, exactly as the reference compares in pre's dtype.
    thr = torch.as_tensor(threshold, dtype=pre.dtype, device=pre.device).reshape(-1)
    thr = thr.to(torch.float32).contiguous()
    if pre.numel() == 0:
        return _empty_codes(pre)
    n_above, _ = _scan_rows(pre, threshold=thr)
    return _codes_from_counts(pre, n_above.to(torch.int64), threshold=thr)
