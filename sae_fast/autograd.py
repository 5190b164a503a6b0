"""Autograd Functions of the sparse training path.

After the encoder product, a k-sparse SAE only needs the pre-activations it kept. These two
Functions make both the forward and the backward cost proportional to the number of kept entries
(nnz = n * k) instead of n * d_sae, by expressing every gradient through the three sparse products
of :mod:`sae_fast.kernels.sparse_decode_reference` (whichever backend implements them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sparse_codes import SparseCodes


class KeptEncoderValues(torch.autograd.Function):
    """``relu(x_c @ W_enc + b_enc)`` at the kept entries, differentiable w.r.t. x_c, W_enc, b_enc.

    The values themselves come from the (no-grad) dense product that selection needed anyway;
    relu's derivative is 1 at every kept entry because only positive entries are ever kept.
    """

    @staticmethod
    def forward(ctx, values: Tensor, x_c: Tensor, W_enc: Tensor, b_enc: Tensor, codes: SparseCodes, ops):
        ctx.save_for_backward(x_c, W_enc)
        ctx.codes, ctx.ops = codes, ops
        return values.clone()

    @staticmethod
    def backward(ctx, grad_values: Tensor):
        x_c, W_enc = ctx.saved_tensors
        codes = ctx.codes.with_values(grad_values.contiguous())
        ops = ctx.ops
        grad_x_c = grad_W_enc = grad_b_enc = None
        if ctx.needs_input_grad[1]:
            # d x_c[i] = sum_j g_j W_enc[:, l_j]: a sparse decode against the encoder's columns.
            grad_x_c = ops.sparse_decode(codes, W_enc.t().contiguous())
        if ctx.needs_input_grad[2]:
            grad_W_enc = ops.sparse_transpose_matmul(codes, x_c).t()
        if ctx.needs_input_grad[3]:
            grad_b_enc = torch.zeros(codes.d_sae, dtype=grad_values.dtype, device=grad_values.device)
            grad_b_enc.index_add_(0, codes.latent_indices, grad_values)
        return None, grad_x_c, grad_W_enc, grad_b_enc, None, None


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


def kept_encoder_values(codes: SparseCodes, x_c: Tensor, W_enc: Tensor, b_enc: Tensor, ops) -> Tensor:
    """Differentiable values of the kept encoder entries (``codes.values`` must hold them, detached)."""
    return KeptEncoderValues.apply(codes.values, x_c, W_enc, b_enc, codes, ops)


def sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None, ops) -> Tensor:
    """Differentiable sparse decode of ``codes`` (its values may carry autograd history)."""
    return SparseDecode.apply(codes.values, W_dec, b_dec, codes, ops)
