"""Fused SAE encoder + selection in Triton.

``pre = relu((x - b_dec) @ W_enc + b_enc)`` is computed by a tiled ``tl.dot`` kernel. For the
BatchTopK path its epilogue also histograms the top radix digit of every value it stores, so
the batch radix select (:mod:`sae_fast.kernels.select_triton`) starts at its second pass: one
full read of the ``n x d_sae`` pre-activations is saved. Top-k and threshold paths run the plain
encoder kernel followed by the selection kernels.

The aux loss's dead-latent selection is fused too: the epilogue copies the dead latents' columns
to a compact buffer while the tile is in registers, and the per-row top-``aux_k`` runs on that, so
the aux term never masks or re-reads the ``n x d_sae`` matrix.

Selection sees ``pre`` exactly as stored (rounded to the input dtype), so the kept set equals
``select_reference`` applied to the returned ``pre``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.select_reference import check_latent_subset
from sae_fast.kernels.select_triton import (
    SUPPORTED_DTYPES,
    batch_topk_select_with_histogram,
    check_budget,
    row_topk,
    threshold_select,
    topk_select,
)
from sae_fast.kernels.triton_interpreter import interpreting
from sae_fast.kernels import triton_utils as radix
from sae_fast.sparse_codes import SparseCodes

AUX_COMPACT_MAX_FRACTION = 1 / 8
"""The epilogue copies aux columns only while they are at most this fraction of d_sae,
so a step's memory stays one ``n x d_sae`` buffer plus at most an eighth of one."""

# The interpreter (triton 3.9) multiplies 16-bit floats as raw integers in tl.dot, so there the
# operands are widened to float32 first (exact: a product of two bf16/fp16 fits a float32).
if interpreting():
    _BM, _BN, _BK, _GROUP_M, _WARPS, _STAGES = 16, 32, 16, 2, 4, 1
else:
    _BM, _BN, _BK, _GROUP_M, _WARPS, _STAGES = 128, 128, 32, 8, 8, 3


@triton.jit
def _encode_kernel(
    x_ptr, w_ptr, b_enc_ptr, b_dec_ptr, pre_ptr, hist_ptr, aux_slot_ptr, aux_pre_ptr, n, m, d, n_aux,
    HISTOGRAM: tl.constexpr, GATHER_AUX: tl.constexpr, SHIFT: tl.constexpr, DIGIT_BITS: tl.constexpr,
    PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_IN_FP32: tl.constexpr,
):  # fmt: skip
    """One [BM, BN] tile of pre; x [n, d], W_enc [d, m], pre [n, m], all row-major.

    GATHER_AUX also stores the tile's aux columns (``aux_slot[col] >= 0``) into ``aux_pre
    [n, n_aux]`` at their slot, while the values are still in registers."""
    pid = tl.program_id(0)
    # Grouped tile order: consecutive programs share W_enc column tiles while they sit in L2.
    tiles_m = tl.cdiv(n, BM)
    tiles_n = tl.cdiv(m, BN)
    per_group = GROUP_M * tiles_n
    group_first_m = (pid // per_group) * GROUP_M
    group_size = tl.minimum(tiles_m - group_first_m, GROUP_M)
    pid_m = group_first_m + (pid % per_group) % group_size
    pid_n = (pid % per_group) // group_size

    rows = pid_m * BM + tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    row_valid = rows < n
    col_valid = cols < m
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * d
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for k0 in range(0, d, BK):
        ks = k0 + tl.arange(0, BK)
        k_valid = ks < d
        x = tl.load(x_rows + ks[None, :], mask=row_valid[:, None] & k_valid[None, :], other=0)
        b_dec = tl.load(b_dec_ptr + ks, mask=k_valid, other=0)
        # Centre, then round to the input dtype as the reference's (x - b_dec) does.
        xc = (x.to(tl.float32) - b_dec.to(tl.float32)[None, :]).to(x.dtype)
        w = tl.load(
            w_ptr + ks.to(tl.int64)[:, None] * m + cols[None, :],
            mask=k_valid[:, None] & col_valid[None, :],
            other=0,
        )
        if DOT_IN_FP32:
            acc = tl.dot(xc.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)
        else:
            acc = tl.dot(xc, w, acc, input_precision=PRECISION)
    acc += tl.load(b_enc_ptr + cols, mask=col_valid, other=0).to(tl.float32)[None, :]
    out = tl.maximum(acc, 0.0).to(pre_ptr.dtype.element_ty)
    valid = row_valid[:, None] & col_valid[None, :]
    tl.store(pre_ptr + rows.to(tl.int64)[:, None] * m + cols[None, :], out, mask=valid)
    if GATHER_AUX:
        slot = tl.load(aux_slot_ptr + cols, mask=col_valid, other=-1)
        aux_at = aux_pre_ptr + rows.to(tl.int64)[:, None] * n_aux + slot[None, :]
        tl.store(aux_at, out, mask=valid & (slot >= 0)[None, :])
    if HISTOGRAM:
        key = tl.reshape(radix.positive_key(out.to(tl.float32)), [BM * BN])
        hist = radix.digit_histogram(key, tl.reshape(valid, [BM * BN]), 0, SHIFT, DIGIT_BITS)
        tl.atomic_add(hist_ptr + tl.arange(0, 1 << DIGIT_BITS), hist.to(tl.int64), mask=hist > 0)


def _check_inputs(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> None:
    for name, t in (("x", x), ("W_enc", W_enc), ("b_enc", b_enc), ("b_dec", b_dec)):
        radix.check_kernel_tensor(name, t)
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    if x.dim() != 2 or W_enc.dim() != 2:
        raise ValueError(
            f"x must be [n, d_in] and W_enc [d_in, d_sae], got {tuple(x.shape)} and {tuple(W_enc.shape)}"
        )
    d, m = W_enc.shape
    if x.shape[1] != d or tuple(b_enc.shape) != (m,) or tuple(b_dec.shape) != (d,):
        raise ValueError(
            f"shapes do not fit: x {tuple(x.shape)}, W_enc {tuple(W_enc.shape)} (d_in, d_sae), "
            f"b_enc {tuple(b_enc.shape)} (want ({m},)), b_dec {tuple(b_dec.shape)} (want ({d},))"
        )
    if {W_enc.dtype, b_enc.dtype, b_dec.dtype} != {x.dtype}:
        raise TypeError(
            f"x, W_enc, b_enc and b_dec must share one dtype, got {x.dtype}, {W_enc.dtype}, "
            f"{b_enc.dtype} and {b_dec.dtype}"
        )


def _encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, top_digit_histogram: Tensor | None,
    aux_latents: Tensor | None,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """``(pre, pre[:, aux_latents])``, both written by the encoder kernel (the second is None
    without ``aux_latents``). Inputs are checked by the caller."""
    x, W_enc = x.contiguous(), W_enc.contiguous()
    b_enc, b_dec = b_enc.contiguous(), b_dec.contiguous()
    (n, d), m = x.shape, W_enc.shape[1]
    pre = torch.empty(n, m, dtype=x.dtype, device=x.device)
    aux_pre = aux_slot = None
    if aux_latents is not None:
        aux_pre = torch.empty(n, aux_latents.numel(), dtype=x.dtype, device=x.device)
        aux_slot = torch.full((m,), -1, dtype=torch.int32, device=x.device)
        aux_slot[aux_latents] = torch.arange(aux_latents.numel(), dtype=torch.int32, device=x.device)
    if pre.numel() == 0:
        return pre, aux_pre
    # float32 follows torch's matmul setting (TF32 only where torch would use it too); 16-bit
    # inputs take the default tensor-core path.
    use_tf32 = x.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    grid = (triton.cdiv(n, _BM) * triton.cdiv(m, _BN),)
    _encode_kernel[grid](
        x, W_enc, b_enc, b_dec, pre,
        top_digit_histogram if top_digit_histogram is not None else pre,
        aux_slot if aux_slot is not None else pre, aux_pre if aux_pre is not None else pre,
        n, m, d, 0 if aux_pre is None else aux_pre.shape[1],
        HISTOGRAM=top_digit_histogram is not None, GATHER_AUX=aux_pre is not None,
        SHIFT=radix.RADIX_SHIFTS[0], DIGIT_BITS=radix.DIGIT_BITS,
        PRECISION=("tf32" if use_tf32 else "ieee") if x.dtype == torch.float32 else None, BM=_BM, BN=_BN, BK=_BK, GROUP_M=_GROUP_M,
        DOT_IN_FP32=interpreting() and x.dtype != torch.float32, num_warps=_WARPS, num_stages=_STAGES,
    )  # fmt: skip
    return pre, aux_pre


def encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, *, top_digit_histogram: Tensor | None = None
) -> Tensor:
    """``relu((x - b_dec) @ W_enc + b_enc)`` ``[n, d_sae]`` in x's dtype.

    If ``top_digit_histogram`` (zeroed int64 ``[NUM_BINS]``) is given, the histogram of the top
    radix digit of the stored values is added to it.
    """
    _check_inputs(x, W_enc, b_enc, b_dec)
    return _encode(x, W_enc, b_enc, b_dec, top_digit_histogram, None)[0]


class EncodedBatch(NamedTuple):
    """What :func:`encode_select` returns."""

    pre: Tensor
    """Dense post-ReLU pre-activations ``[n, d_sae]`` (the selection can be re-checked on them)."""
    codes: SparseCodes
    """The kept entries, values taken from ``pre``."""
    aux_codes: SparseCodes | None
    """Top-``aux_k`` of each row among ``aux_latents`` (None when no ``aux_latents`` were given)."""


def encode_select(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    *,
    k_total: int | None = None,
    k: int | None = None,
    threshold: Tensor | float | None = None,
    aux_latents: Tensor | None = None,
    aux_k: int = 0,
) -> EncodedBatch:
    """Encode ``x [n, d_in]`` and select, with exactly one of ``k_total`` (BatchTopK), ``k``
    (per-token TopK) or ``threshold`` (JumpReLU, scalar or ``[d_sae]``).

    With ``aux_latents`` (strictly ascending int64, e.g. the dead latents) it also selects the
    aux-loss codes: per row the ``aux_k`` largest positive entries among those columns, equal to
    ``subset_topk_select(pre, aux_latents, aux_k)``. When they are at most 1/8 of the dictionary
    the encoder's epilogue copies their columns to a compact ``[n, len(aux_latents)]`` buffer and
    the per-row select runs there, so the aux term costs no pass over the ``n x d_sae`` matrix;
    with more of them, a compact copy would cost more memory than it saves, and the select reads
    their columns of ``pre`` in place instead.

    The backward needs only ``codes`` and ``x - b_dec``: the gradient of the kept values flows to
    ``W_enc`` through ``sparse_transpose_matmul(codes, x - b_dec)`` and to ``x`` through
    ``sparse_decode(codes, W_enc.T)``; none of it carries autograd history.
    """
    chosen = [name for name, v in (("k_total", k_total), ("k", k), ("threshold", threshold)) if v is not None]
    if len(chosen) != 1:
        raise ValueError(f"pass exactly one of k_total, k or threshold, got {chosen or 'none'}")
    _check_inputs(x, W_enc, b_enc, b_dec)
    aux_k = check_budget("aux_k", aux_k)
    compact_aux = None
    if aux_latents is not None:
        aux_latents = check_latent_subset(aux_latents, W_enc.shape[-1], x.device)
        if aux_latents.numel() <= W_enc.shape[-1] * AUX_COMPACT_MAX_FRACTION:
            compact_aux = aux_latents
    hist = None
    if k_total is not None:
        check_budget("k_total", k_total)
        hist = torch.zeros(radix.NUM_BINS, dtype=torch.int64, device=x.device)
    pre, aux_pre = _encode(x, W_enc, b_enc, b_dec, hist, compact_aux)
    if k_total is not None:
        codes = batch_topk_select_with_histogram(pre, k_total, hist)
    elif k is not None:
        codes = topk_select(pre, k)
    else:
        codes = threshold_select(pre, threshold)
    aux_codes = None
    if aux_pre is not None:
        compact = topk_select(aux_pre, aux_k)
        del aux_pre
        # Ascending aux_latents keep every row's entries ascending after the relabelling.
        aux_codes = SparseCodes(compact.row_offsets, aux_latents[compact.latent_indices], compact.values, pre.shape[1])
    elif aux_latents is not None:  # validated above: skip subset_topk_select's second check
        aux_codes = row_topk(pre, aux_k, aux_latents)
    return EncodedBatch(pre, codes, aux_codes)
