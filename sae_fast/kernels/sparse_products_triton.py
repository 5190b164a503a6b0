"""Triton sparse products: decode and the two products its backward needs.

Same contract as :mod:`sae_fast.kernels.sparse_decode_reference`; all three cost O(nnz * d)
instead of the dense O(n * d_sae * d):

- :func:`sparse_decode`            ``out[i] = sum_{j in row i} values[j] * W[latent(j)]`` (+ b)
- :func:`nested_sparse_decode`     the same for every prefix ``latent(j) < widths[l]`` at once, ``[L, n, d]``
- :func:`sparse_row_dots`          ``out[j] = <A[token(j)], W[latent(j)]>``
- :func:`sparse_transpose_matmul`  ``out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)]``

Every product accumulates in float32 whatever the input dtype and rounds once on store. The transpose product is written
without atomics: entries are reordered by latent with a stable sort, and one program per
(latent, d-block) sums its entries in token order, so results are bitwise deterministic.
``A`` and ``W`` may be strided views (e.g. ``W_enc.T``); nothing is copied to make them contiguous.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.sparse_decode_reference import split_rows_by_level
from sae_fast.kernels.triton_interpreter import interpreting
from sae_fast.kernels.triton_utils import check_kernel_tensor
from sae_fast.sparse_codes import SparseCodes

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

if interpreting():
    # Small entry blocks so small test shapes still run the multi-step loops.
    _ENTRIES, _DIM = 4, 32
else:
    _ENTRIES, _DIM = 16, 128


def _check_codes(codes: SparseCodes) -> None:
    if not isinstance(codes, SparseCodes):
        raise TypeError(f"codes must be SparseCodes, got {type(codes).__name__}")
    check_kernel_tensor("codes.values", codes.values)
    if codes.values.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"codes.values must be float32, float16 or bfloat16, got {codes.values.dtype}")


def _check_matrix(name: str, t: Tensor, rows: int | None, rows_meaning: str, device) -> None:
    check_kernel_tensor(name, t)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if rows is not None and t.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows ({rows_meaning}), got shape {tuple(t.shape)}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the codes are on {device}")


def _check_bias(b: Tensor | None, W: Tensor) -> tuple[Tensor | None, torch.dtype]:
    """``b`` ready for a decode kernel, and the output dtype (W's promoted with b's, as torch would)."""
    if b is None:
        return None, W.dtype
    check_kernel_tensor("b", b)
    if tuple(b.shape) != (W.shape[1],):
        raise ValueError(f"b must have shape ({W.shape[1]},) to match W's columns, got {tuple(b.shape)}")
    return b.contiguous(), torch.promote_types(W.dtype, b.dtype)


@triton.jit
def _gather_rows_sum(
    acc, start, end, index_ptr, value_ptr, m_ptr, m_stride_row, m_stride_col, cols, col_valid,
    BLOCK_E: tl.constexpr,
):  # fmt: skip
    """``acc + sum_{j in [start, end)} values[j] * M[index[j], cols]`` in float32: decode gathers
    decoder rows by latent, the transpose product gathers input rows by token."""
    for first in range(start, end, BLOCK_E):
        entries = first + tl.arange(0, BLOCK_E)
        entry_valid = entries < end
        rows = tl.load(index_ptr + entries, mask=entry_valid, other=0)
        values = tl.load(value_ptr + entries, mask=entry_valid, other=0).to(tl.float32)
        m = tl.load(
            m_ptr + rows[:, None] * m_stride_row + cols[None, :] * m_stride_col,
            mask=entry_valid[:, None] & col_valid[None, :],
            other=0,
        ).to(tl.float32)
        acc += tl.sum(values[:, None] * m, 0)
    return acc


@triton.jit
def _sparse_decode_kernel(
    row_offsets_ptr, latent_ptr, value_ptr, w_ptr, w_stride_row, w_stride_col, b_ptr, out_ptr, d,
    HAS_BIAS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """One program per (token, d-block): gather the token's decoder rows and sum them."""
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_valid = cols < d
    start = tl.load(row_offsets_ptr + row)
    end = tl.load(row_offsets_ptr + row + 1)
    acc = _gather_rows_sum(
        tl.zeros([BLOCK_D], dtype=tl.float32), start, end, latent_ptr, value_ptr, w_ptr, w_stride_row, w_stride_col,
        cols, col_valid, BLOCK_E,
    )  # fmt: skip
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_valid, other=0).to(tl.float32)
    tl.store(out_ptr + row.to(tl.int64) * d + cols, acc, mask=col_valid)


def sparse_decode(codes: SparseCodes, W: Tensor, b: Tensor | None = None) -> Tensor:
    """``[n, d]`` decode of ``codes`` with ``W [d_sae, d]`` (plus ``b [d]``), in W's dtype
    (promoted with b's, as torch would)."""
    _check_codes(codes)
    dev = codes.values.device
    _check_matrix("W", W, codes.d_sae, "one per latent", dev)
    n, d = codes.n_tokens, W.shape[1]
    b, out_dtype = _check_bias(b, W)
    out = torch.empty(n, d, dtype=out_dtype, device=dev)
    if n > 0 and d > 0:
        _sparse_decode_kernel[(n, triton.cdiv(d, _DIM))](
            codes.row_offsets, codes.latent_indices, codes.values, W, W.stride(0), W.stride(1),
            b if b is not None else out, out, d,
            HAS_BIAS=b is not None, BLOCK_E=_ENTRIES, BLOCK_D=_DIM,
        )  # fmt: skip
    return out


@triton.jit
def _nested_sparse_decode_kernel(
    level_offsets_ptr, latent_ptr, value_ptr, w_ptr, w_stride_row, w_stride_col, b_ptr, out_ptr, n, d, n_levels,
    HAS_BIAS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """One program per (token, d-block): one walk over the token's entries, level by level,
    storing the running sum at each level's end (each level's reconstruction)."""
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_valid = cols < d
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=col_valid, other=0).to(tl.float32)
    for level in range(0, n_levels):
        start = tl.load(level_offsets_ptr + row * n_levels + level)
        end = tl.load(level_offsets_ptr + row * n_levels + level + 1)
        acc = _gather_rows_sum(
            acc, start, end, latent_ptr, value_ptr, w_ptr, w_stride_row, w_stride_col, cols, col_valid, BLOCK_E
        )
        tl.store(out_ptr + (level * n + row).to(tl.int64) * d + cols, acc, mask=col_valid)


def nested_sparse_decode(codes: SparseCodes, W: Tensor, b: Tensor | None, widths: Tensor) -> Tensor:
    """``[L, n, d]``: level l decodes only the latents below ``widths[l]`` (int64, increasing, last = d_sae)."""
    _check_codes(codes)
    dev = codes.values.device
    _check_matrix("W", W, codes.d_sae, "one per latent", dev)
    check_kernel_tensor("widths", widths)
    if widths.dim() != 1 or widths.dtype != torch.int64 or widths.numel() == 0:
        raise ValueError("widths must be a non-empty 1-D int64 tensor of prefix widths ending at d_sae")
    n, d, n_levels = codes.n_tokens, W.shape[1], widths.numel()
    b, out_dtype = _check_bias(b, W)
    out = torch.empty(n_levels, n, d, dtype=out_dtype, device=dev)
    if n > 0 and d > 0:
        # The (token, level) slices of the rows, so the kernel never tests a latent against a width.
        level_offsets = split_rows_by_level(codes, widths).row_offsets
        _nested_sparse_decode_kernel[(n, triton.cdiv(d, _DIM))](
            level_offsets, codes.latent_indices, codes.values, W, W.stride(0), W.stride(1),
            b if b is not None else out, out, n, d, n_levels,
            HAS_BIAS=b is not None, BLOCK_E=_ENTRIES, BLOCK_D=_DIM,
        )  # fmt: skip
    return out


@triton.jit
def _sparse_row_dots_kernel(
    token_ptr, latent_ptr, a_ptr, a_stride_row, a_stride_col, w_ptr, w_stride_row, w_stride_col,
    out_ptr, nnz, d, BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """One program per block of entries: dot products of their A rows with their W rows."""
    entries = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    entry_valid = entries < nnz
    tokens = tl.load(token_ptr + entries, mask=entry_valid, other=0)
    latents = tl.load(latent_ptr + entries, mask=entry_valid, other=0)
    acc = tl.zeros([BLOCK_E], dtype=tl.float32)
    for first in range(0, d, BLOCK_D):
        cols = first + tl.arange(0, BLOCK_D)
        mask = entry_valid[:, None] & (cols < d)[None, :]
        a = tl.load(
            a_ptr + tokens[:, None] * a_stride_row + cols[None, :] * a_stride_col, mask=mask, other=0
        ).to(tl.float32)
        w = tl.load(
            w_ptr + latents[:, None] * w_stride_row + cols[None, :] * w_stride_col, mask=mask, other=0
        ).to(tl.float32)
        acc += tl.sum(a * w, 1)
    tl.store(out_ptr + entries, acc, mask=entry_valid)


def sparse_row_dots(codes: SparseCodes, A: Tensor, W: Tensor) -> Tensor:
    """``[nnz]`` dots ``<A[token(j)], W[latent(j)]>``; ``A [n, d]``, ``W [d_sae, d]``."""
    _check_codes(codes)
    dev = codes.values.device
    _check_matrix("A", A, codes.n_tokens, "one per token", dev)
    _check_matrix("W", W, codes.d_sae, "one per latent", dev)
    if A.shape[1] != W.shape[1]:
        raise ValueError(f"A and W must have the same width, got {tuple(A.shape)} and {tuple(W.shape)}")
    nnz, d = codes.nnz, A.shape[1]
    out = torch.empty(nnz, dtype=torch.promote_types(A.dtype, W.dtype), device=dev)
    if nnz > 0 and d > 0:
        _sparse_row_dots_kernel[(triton.cdiv(nnz, _ENTRIES),)](
            codes.token_indices(), codes.latent_indices, A, A.stride(0), A.stride(1),
            W, W.stride(0), W.stride(1), out, nnz, d, BLOCK_E=_ENTRIES, BLOCK_D=_DIM,
        )  # fmt: skip
    return out


@triton.jit
def _sparse_transpose_matmul_kernel(
    latent_offsets_ptr, token_ptr, value_ptr, a_ptr, a_stride_row, a_stride_col, out_ptr, d,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """One program per (latent, d-block): sum value * A[token] over the latent's entries."""
    latent = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_valid = cols < d
    start = tl.load(latent_offsets_ptr + latent)
    end = tl.load(latent_offsets_ptr + latent + 1)
    acc = _gather_rows_sum(
        tl.zeros([BLOCK_D], dtype=tl.float32), start, end, token_ptr, value_ptr, a_ptr, a_stride_row, a_stride_col,
        cols, col_valid, BLOCK_E,
    )  # fmt: skip
    tl.store(out_ptr + latent.to(tl.int64) * d + cols, acc, mask=col_valid)


def sparse_transpose_matmul(codes: SparseCodes, A: Tensor, transposed: bool = False) -> Tensor:
    """``[d_sae, d]`` sums ``sum_{j: latent(j) = l} values[j] * A[token(j)]``, in A's dtype (``[d, d_sae]`` if ``transposed``)."""
    _check_codes(codes)
    dev = codes.values.device
    _check_matrix("A", A, codes.n_tokens, "one per token", dev)
    m, d = codes.d_sae, A.shape[1]
    out = torch.empty(m, d, dtype=A.dtype, device=dev)
    if m == 0 or d == 0:
        return out.t().contiguous() if transposed else out
    # Stable: entries of one latent stay in token order, which fixes the summation order.
    sorted_latents, order = torch.sort(codes.latent_indices, stable=True)
    latent_offsets = torch.searchsorted(
        sorted_latents, torch.arange(m + 1, dtype=torch.int64, device=dev)
    )
    tokens = codes.token_indices()[order]
    values = codes.values[order]
    _sparse_transpose_matmul_kernel[(m, triton.cdiv(d, _DIM))](
        latent_offsets, tokens, values, A, A.stride(0), A.stride(1), out, d,
        BLOCK_E=_ENTRIES, BLOCK_D=_DIM,
    )  # fmt: skip
    return out.t().contiguous() if transposed else out
