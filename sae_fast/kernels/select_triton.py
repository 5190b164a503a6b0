"""Triton selection kernels: batch top-k, per-row top-k and threshold selection without sorting.

Same contract as :mod:`sae_fast.kernels.select_reference` (kept set, tie rule and canonical CSR
order are identical, so results compare element by element).

Why radix select: a BatchTopK batch keeps ``n * k`` of ``n * d_sae`` pre-activations (0.1 % at the
paper sizes). Sorting or ``torch.topk`` over all of them is the dominant cost of the selection; an
exact radix select (see :mod:`sae_fast.kernels.triton_utils`) needs only a few streaming passes.

Once the exact cut key ``t`` and the number of entries equal to ``t`` that still fit (``ties``)
are known, a per-row scan counts entries ``> t`` and ``== t``; ties are admitted in row-major order
(the reference's tie rule) via an exclusive cumsum over rows; a second per-row scan writes CSR in
ascending latent order (:mod:`sae_fast.kernels.select_scan_triton`). Only one host sync happens:
reading ``nnz`` to allocate the output.

bfloat16 / float16 inputs are selected on their values as given (widened to float32 inside the
kernels, which preserves order and equality exactly); output values keep the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.select_reference import check_latent_subset
from sae_fast.kernels.select_scan_triton import (
    codes_above_cut,
    codes_above_threshold,
    count_above_cut,
    count_above_threshold,
    load_columns,
)
from sae_fast.kernels.triton_interpreter import interpreting
from sae_fast.kernels.triton_utils import (
    DIGIT_BITS,
    NUM_BINS,
    RADIX_SHIFTS,
    check_kernel_tensor,
    digit_histogram,
    positive_key,
    refine_prefix,
)
from sae_fast.sparse_codes import SparseCodes

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Block sizes. Under the CPU interpreter every program and every reduction costs milliseconds, so
# it gets few histogram programs; its blocks stay small so that tests with small shapes still
# exercise the multi-step loops and the ragged edges.
if interpreting():
    _HIST_BLOCK, _HIST_MAX_PROGRAMS = 1024, 4
    _ROW_SELECT_COLS = 128
else:
    _HIST_BLOCK = 2048  # entries per histogram step
    _HIST_MAX_PROGRAMS = 1024  # bounds the per-program atomic flushes of the histogram
    _ROW_SELECT_COLS = 1024  # columns per step of the per-row radix select


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
# Batch top-k: global histograms refined on device
# ----------------------------------------------------------------------------------------------


@triton.jit
def _batch_histogram_kernel(
    pre_ptr,
    numel,
    blocks_per_program,
    state_ptr,  # int64 [2]: (prefix, rank)
    hist_ptr,  # int64 [1 << DIGIT_BITS], zeroed
    SHIFT: tl.constexpr,
    DIGIT_BITS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    prefix = tl.load(state_ptr).to(tl.int32)
    hist = tl.zeros([1 << DIGIT_BITS], dtype=tl.int32)
    first_block = pid.to(tl.int64) * blocks_per_program
    for i in range(0, blocks_per_program):
        offs = (first_block + i) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < numel
        key = positive_key(tl.load(pre_ptr + offs, mask=valid, other=0).to(tl.float32))
        hist += digit_histogram(key, valid, prefix, SHIFT, DIGIT_BITS)
    # Skipping empty bins matters on GPU: values crowd into a few exponent bins, so most of the
    # global atomics would add zero.
    tl.atomic_add(hist_ptr + tl.arange(0, 1 << DIGIT_BITS), hist.to(tl.int64), mask=hist > 0)


@triton.jit
def _batch_refine_kernel(hist_ptr, state_ptr, SHIFT: tl.constexpr, DIGIT_BITS: tl.constexpr):
    hist = tl.load(hist_ptr + tl.arange(0, 1 << DIGIT_BITS))
    prefix = tl.load(state_ptr).to(tl.int32)
    rank = tl.load(state_ptr + 1)
    prefix, rank = refine_prefix(hist, prefix, rank, SHIFT, DIGIT_BITS)
    tl.store(state_ptr, prefix.to(tl.int64))
    tl.store(state_ptr + 1, rank)


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
                SHIFT=shift, DIGIT_BITS=DIGIT_BITS, BLOCK=_HIST_BLOCK,
            )  # fmt: skip
        _batch_refine_kernel[(1,)](hists[p], state, SHIFT=shift, DIGIT_BITS=DIGIT_BITS)
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
    n_above, n_ties = count_above_cut(pre, cut)
    n_ties = n_ties.to(torch.int64)
    ties_before = torch.cumsum(n_ties, 0) - n_ties
    tie_budget = torch.minimum((ties_allowed - ties_before).clamp_(min=0), n_ties)
    return codes_above_cut(pre, n_above + tie_budget, cut, tie_budget)


@triton.jit
def _row_radix_pass(
    row_ptr, columns_ptr, m, prefix, rank, SHIFT: tl.constexpr, DIGIT_BITS: tl.constexpr, BLOCK: tl.constexpr
):  # fmt: skip
    hist = tl.zeros([1 << DIGIT_BITS], dtype=tl.int32)
    for start in range(0, m, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        valid = cols < m
        v, _ = load_columns(row_ptr, columns_ptr, cols, valid)
        hist += digit_histogram(positive_key(v.to(tl.float32)), valid, prefix, SHIFT, DIGIT_BITS)
    return refine_prefix(hist, prefix, rank, SHIFT, DIGIT_BITS)


@triton.jit
def _row_topk_cut_kernel(
    pre_ptr, m, row_stride, columns_ptr, k, cut_ptr, tie_budget_ptr, count_ptr,
    DIGIT_BITS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Per row: the key of its k-th largest entry, how many entries equal to it are kept, and the
    row's kept count (k, or the number of positives if there are fewer). ``m`` entries take part:
    the whole row, or the columns listed at ``columns_ptr`` (when not None)."""
    row = tl.program_id(0)
    row_ptr = pre_ptr + row.to(tl.int64) * row_stride
    # Scalars derived from `row` so they are tensors of a fixed type from the start (k == 1 is
    # specialised to a constexpr by Triton).
    n_positive = row * 0
    for start in range(0, m, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        v, _ = load_columns(row_ptr, columns_ptr, cols, cols < m)
        n_positive += tl.sum((v.to(tl.float32) > 0).to(tl.int32), 0)
    prefix = row * 0
    rank = row.to(tl.int64) * 0 + k
    for digit in tl.static_range(32 // DIGIT_BITS):  # most significant digit first; keys are int32
        shift = 32 - DIGIT_BITS * (digit + 1)
        prefix, rank = _row_radix_pass(row_ptr, columns_ptr, m, prefix, rank, shift, DIGIT_BITS, BLOCK)
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
        pre, width, m, columns, k, cut, tie_budget, counts, DIGIT_BITS=DIGIT_BITS, BLOCK=_ROW_SELECT_COLS
    )
    return codes_above_cut(pre, counts, cut, tie_budget, columns)


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
    n_above = count_above_threshold(pre, thr)
    return codes_above_threshold(pre, n_above.to(torch.int64), thr)
