"""Fused SAE encoder + selection in Triton.

``pre = relu((x - b_dec) @ W_enc + b_enc)`` is computed by a tiled ``tl.dot`` kernel. For the
BatchTopK path its epilogue also histograms the top radix digit of every value it stores, so
the batch radix select (:mod:`sae_fast.kernels.select_triton`) starts at its second pass: one
full read of the ``n x d_sae`` pre-activations is saved. Top-k and threshold paths run the plain
encoder kernel followed by the selection kernels.

Selection sees ``pre`` exactly as stored (rounded to the input dtype), so the kept set equals
``select_reference`` applied to the returned ``pre``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.select_triton import (
    NUM_BINS,
    RADIX_SHIFTS,
    SUPPORTED_DTYPES,
    batch_topk_select_with_histogram,
    check_budget,
    check_kernel_tensor,
    digit_histogram,
    interpreting,
    positive_key,
    threshold_select,
    topk_select,
)
from sae_fast.sparse_codes import SparseCodes

# The interpreter (triton 3.9) multiplies 16-bit floats as raw integers in tl.dot, so there the
# operands are widened to float32 first (exact: a product of two bf16/fp16 fits a float32).
if interpreting():
    _BM, _BN, _BK, _GROUP_M, _WARPS, _STAGES = 16, 32, 16, 2, 4, 1
else:
    _BM, _BN, _BK, _GROUP_M, _WARPS, _STAGES = 128, 128, 32, 8, 8, 3


@triton.jit
def _encode_kernel(
    x_ptr, w_ptr, b_enc_ptr, b_dec_ptr, pre_ptr, hist_ptr, n, m, d,
    HISTOGRAM: tl.constexpr, SHIFT: tl.constexpr, NUM_BINS: tl.constexpr,
    PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_IN_FP32: tl.constexpr,
):  # fmt: skip
    """One [BM, BN] tile of pre; x [n, d], W_enc [d, m], pre [n, m], all row-major."""
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
    if HISTOGRAM:
        key = tl.reshape(positive_key(out.to(tl.float32)), [BM * BN])
        hist = digit_histogram(key, tl.reshape(valid, [BM * BN]), 0, SHIFT, NUM_BINS)
        tl.atomic_add(hist_ptr + tl.arange(0, NUM_BINS), hist.to(tl.int64), mask=hist > 0)


def _check_inputs(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> None:
    for name, t in (("x", x), ("W_enc", W_enc), ("b_enc", b_enc), ("b_dec", b_dec)):
        check_kernel_tensor(name, t)
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


def encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, *, top_digit_histogram: Tensor | None = None
) -> Tensor:
    """``relu((x - b_dec) @ W_enc + b_enc)`` ``[n, d_sae]`` in x's dtype.

    If ``top_digit_histogram`` (zeroed int64 ``[NUM_BINS]``) is given, the histogram of the top
    radix digit of the stored values is added to it.
    """
    _check_inputs(x, W_enc, b_enc, b_dec)
    x, W_enc = x.contiguous(), W_enc.contiguous()
    b_enc, b_dec = b_enc.contiguous(), b_dec.contiguous()
    (n, d), m = x.shape, W_enc.shape[1]
    pre = torch.empty(n, m, dtype=x.dtype, device=x.device)
    if pre.numel() == 0:
        return pre
    # float32 follows torch's matmul setting (TF32 only where torch would use it too); 16-bit
    # inputs take the default tensor-core path.
    use_tf32 = x.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    grid = (triton.cdiv(n, _BM) * triton.cdiv(m, _BN),)
    _encode_kernel[grid](
        x, W_enc, b_enc, b_dec, pre,
        top_digit_histogram if top_digit_histogram is not None else pre, n, m, d,
        HISTOGRAM=top_digit_histogram is not None, SHIFT=RADIX_SHIFTS[0], NUM_BINS=NUM_BINS,
        PRECISION=("tf32" if use_tf32 else "ieee") if x.dtype == torch.float32 else None, BM=_BM, BN=_BN, BK=_BK, GROUP_M=_GROUP_M,
        DOT_IN_FP32=interpreting() and x.dtype != torch.float32, num_warps=_WARPS, num_stages=_STAGES,
    )  # fmt: skip
    return pre


def encode_select(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    *,
    k_total: int | None = None,
    k: int | None = None,
    threshold: Tensor | float | None = None,
) -> tuple[Tensor, SparseCodes]:
    """Encode ``x [n, d_in]`` and select, with exactly one of ``k_total`` (BatchTopK), ``k``
    (per-token TopK) or ``threshold`` (JumpReLU, scalar or ``[d_sae]``).

    Returns ``(pre, codes)``: the dense post-ReLU pre-activations ``[n, d_sae]`` (the aux loss
    reads the dead latents' columns; the selection can be re-checked against them) and the kept
    entries as :class:`SparseCodes` with values from ``pre``. The backward needs only ``codes``
    and ``x - b_dec``: the gradient of the kept values flows to ``W_enc`` through
    ``sparse_transpose_matmul(codes, x - b_dec)`` and to ``x`` through
    ``sparse_decode(codes, W_enc.T)``; none of it carries autograd history.
    """
    chosen = [name for name, v in (("k_total", k_total), ("k", k), ("threshold", threshold)) if v is not None]
    if len(chosen) != 1:
        raise ValueError(f"pass exactly one of k_total, k or threshold, got {chosen or 'none'}")
    if k_total is not None:
        check_budget("k_total", k_total)
        hist = torch.zeros(NUM_BINS, dtype=torch.int64, device=x.device)
        pre = encode(x, W_enc, b_enc, b_dec, top_digit_histogram=hist)
        return pre, batch_topk_select_with_histogram(pre, k_total, hist)
    pre = encode(x, W_enc, b_enc, b_dec)
    if k is not None:
        return pre, topk_select(pre, k)
    return pre, threshold_select(pre, threshold)
