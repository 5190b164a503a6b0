"""Autograd Functions of the sparse training path.

After the encoder product, a k-sparse SAE only needs the pre-activations it kept. These two
Functions make both the forward and the backward cost proportional to the number of kept entries
(nnz = n * k) instead of n * d_sae, by expressing every gradient through the three sparse products
of :mod:`sae_fast.kernels.sparse_decode_reference` (whichever backend implements them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.kernels.sparse_decode_reference import split_rows_by_level
from sae_fast.sparse_codes import SparseCodes


class KeptEncoderValues(torch.autograd.Function):
    """``relu((x - b_dec) @ W_enc + b_enc)`` at the kept entries, differentiable w.r.t. x, b_dec,
    W_enc and b_enc.

    The values themselves come from the (no-grad) dense product that selection needed anyway;
    relu's derivative is 1 at every kept entry because only positive entries are ever kept.
    """

    @staticmethod
    def forward(ctx, values: Tensor, x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, codes: SparseCodes, ops):
        ctx.save_for_backward(x, b_dec, W_enc)
        ctx.codes, ctx.ops = codes, ops
        return values.clone()

    @staticmethod
    def backward(ctx, grad_values: Tensor):
        x, b_dec, W_enc = ctx.saved_tensors
        codes = ctx.codes.with_values(grad_values.contiguous())
        ops = ctx.ops
        need_x, need_b_dec, need_W_enc, need_b_enc = ctx.needs_input_grad[1:5]
        grad_x = grad_b_dec = grad_W_enc = grad_b_enc = None
        if need_b_enc or need_b_dec:
            # s[l] = sum of the gradients of latent l's kept entries: d loss / d b_enc.
            latent_sums = torch.zeros(codes.d_sae, dtype=grad_values.dtype, device=grad_values.device)
            latent_sums.index_add_(0, codes.latent_indices, grad_values)
            grad_b_enc = latent_sums if need_b_enc else None
            # sum_i d x_c[i] = W_enc @ s: a mat-vec, where summing the per-token gradients would
            # need an n x d sparse decode against a transposed copy of W_enc.
            grad_b_dec = -(W_enc @ latent_sums) if need_b_dec else None
        if need_x:
            # d x[i] = sum_j g_j W_enc[:, l_j]: a sparse decode against the encoder's columns.
            grad_x = ops.sparse_decode(codes, W_enc.t().contiguous())
        if need_W_enc:
            # Written in W_enc's own [d_in, d_sae] layout: Adam's elementwise passes over a transposed
            # view cost about 5x more, and a separate transposing copy costs ~50 ms at d_sae = 24576.
            grad_W_enc = ops.sparse_transpose_matmul(codes, x - b_dec, transposed=True)
        return None, grad_x, grad_b_dec, grad_W_enc, grad_b_enc, None, None


class SparseDecode(torch.autograd.Function):
    """``x_hat = sparse_decode(codes, W_dec) (+ b_dec)`` with a backward that touches only kept rows."""

    @staticmethod
    def forward(ctx, values: Tensor, W_dec: Tensor, b_dec: Tensor | None, codes: SparseCodes, ops):
        codes = codes.with_values(values)
        ctx.save_for_backward(values, W_dec)
        ctx.codes, ctx.ops, ctx.has_bias = codes, ops, b_dec is not None
        return ops.sparse_decode(codes, W_dec, b_dec)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, W_dec = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        codes, ops = ctx.codes.with_values(values), ctx.ops
        grad_values = ops.sparse_row_dots(codes, grad_out, W_dec) if ctx.needs_input_grad[0] else None
        grad_W_dec = ops.sparse_transpose_matmul(codes, grad_out) if ctx.needs_input_grad[1] else None
        grad_b_dec = grad_out.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_values, grad_W_dec, grad_b_dec, None, None


class NestedSparseDecode(torch.autograd.Function):
    """Every prefix's reconstruction ``[L, n, d]`` (Matryoshka), with a backward of the same two sparse
    products as :class:`SparseDecode` on the codes split into (token, level) rows.

    A latent of level l appears in the reconstructions of levels l..L-1, so its gradient sees the
    sum of those levels' output gradients, ``G[l] = sum_{j >= l} grad_out[j]``: one suffix sum over
    levels, then ``d values = <G[level], W_dec[latent]>`` and ``d W_dec = sum values * G[level]``.
    """

    @staticmethod
    def forward(ctx, values: Tensor, W_dec: Tensor, b_dec: Tensor | None, codes: SparseCodes, widths: Tensor, ops):
        codes = codes.with_values(values)
        ctx.save_for_backward(values, W_dec, widths)
        ctx.codes, ctx.ops, ctx.has_bias = codes, ops, b_dec is not None
        return ops.nested_sparse_decode(codes, W_dec, b_dec, widths)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, W_dec, widths = ctx.saved_tensors
        n_levels, n, d = grad_out.shape
        ops = ctx.ops
        # suffix[l] = sum_{j >= l} grad_out[j], laid out [n, L, d] so row i * L + l is (token i, level l).
        suffix = grad_out.flip(0).cumsum(0).flip(0)
        per_level = suffix.transpose(0, 1).reshape(n * n_levels, d).contiguous()
        codes = split_rows_by_level(ctx.codes.with_values(values), widths)
        grad_values = ops.sparse_row_dots(codes, per_level, W_dec) if ctx.needs_input_grad[0] else None
        grad_W_dec = ops.sparse_transpose_matmul(codes, per_level) if ctx.needs_input_grad[1] else None
        grad_b_dec = suffix[0].sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_values, grad_W_dec, grad_b_dec, None, None, None


def nested_sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None, widths: Tensor, ops) -> Tensor:
    """Differentiable ``[L, n, d]`` reconstructions of each dictionary prefix ``[0, widths[l])``."""
    return NestedSparseDecode.apply(codes.values, W_dec, b_dec, codes, widths, ops)


def kept_encoder_values(
    codes: SparseCodes, x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, ops
) -> Tensor:  # fmt: skip
    """Differentiable values of the kept encoder entries (``codes.values`` must hold them, detached)."""
    return KeptEncoderValues.apply(codes.values, x, b_dec, W_enc, b_enc, codes, ops)


def sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None, ops) -> Tensor:
    """Differentiable sparse decode of ``codes`` (its values may carry autograd history)."""
    return SparseDecode.apply(codes.values, W_dec, b_dec, codes, ops)
