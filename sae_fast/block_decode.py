"""Decode of codes confined to a few columns, through dense products on just those columns.

The aux loss's codes live on the dead latents only, and keep ``aux_k`` of them per token: at 20%
dead latents of 24576 and aux_k = 512 that is 2M entries, a tenth of the ``[n, #dead]`` block. At
that density the sparse products (each entry gathers a whole d-float row) are slower than BLAS on
the dense block: measured on 2 CPU cores at n = 4096, d = 768, the four products of the aux term's
forward and backward took 1.9 s sparse and 0.75 s as four GEMMs over the block, against 0.73-1.1 s
for the encoder product in the same run (a shared machine; ``benchmarks/test_bench_training_step.py``
measures the whole step).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sparse_codes import SparseCodes

DENSE_BLOCK_MIN_DENSITY = 0.05
"""Use the dense block when at least this share of its cells is kept. From the timing above:
0.9 µs per sparse entry against 37 ns per dense cell puts the break-even near 4%."""


def prefers_dense_block(codes: SparseCodes, block: Tensor) -> bool:
    """Whether ``codes`` (all of whose latents lie in ``block``) fill enough of it for dense products."""
    cells = codes.n_tokens * block.numel()
    return cells > 0 and codes.nnz >= DENSE_BLOCK_MIN_DENSITY * cells


class BlockDecode(torch.autograd.Function):
    """``sum_{j in row i} relu_value_j * W_dec[latent(j)]`` for codes whose latents lie in ``block``.

    The values are the kept encoder entries ``(x - b_dec) @ W_enc + b_enc`` (positive, so relu's
    derivative is 1 there), so one Function carries the gradient to the encoder and decoder both,
    each as a GEMM on the block's columns, as :class:`~sae_fast.autograd.KeptEncoderValues` and
    :class:`~sae_fast.autograd.SparseDecode` do entry by entry.
    """

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, W_dec, codes: SparseCodes, block: Tensor):
        tokens = codes.token_indices()
        # Column of each entry within the block: a lookup table costs one gather (a binary search
        # per entry took 69 ms for 2M entries).
        column = torch.full((W_dec.shape[0],), -1, dtype=torch.int64, device=block.device)
        column[block] = torch.arange(block.numel(), device=block.device)
        positions = column[codes.latent_indices]
        codes_dense = W_dec.new_zeros(codes.n_tokens, block.numel())
        codes_dense[tokens, positions] = codes.values.to(W_dec.dtype)
        # Kept for the backward: [n, #block], a fifth of the pre-activations at 20% dead latents.
        ctx.save_for_backward(x, b_dec, W_enc, W_dec, block, codes_dense)
        return codes_dense @ W_dec.index_select(0, block)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, b_dec, W_enc, W_dec, block, codes_dense = ctx.saved_tensors
        need_x, need_b_dec, need_W_enc, need_b_enc, need_W_dec = ctx.needs_input_grad[:5]
        grad_x = grad_b_dec = grad_W_enc = grad_b_enc = grad_W_dec = None
        W_block = W_dec.index_select(0, block)
        if need_W_dec:
            grad_W_dec = torch.zeros_like(W_dec).index_copy_(0, block, codes_dense.t() @ grad_out)
        # d loss / d value at the kept cells only: the GEMM, then zero the cells that were not kept.
        # Kept values are positive, so the zeros of codes_dense are exactly the cells not kept.
        grad_codes = (grad_out @ W_block.t()).masked_fill_(codes_dense == 0, 0)
        if need_W_enc:
            grad_W_enc = torch.zeros_like(W_enc).index_copy_(1, block, (x - b_dec).t() @ grad_codes)
        if need_b_enc or need_b_dec:
            sums = grad_codes.sum(dim=0)
            if need_b_enc:
                grad_b_enc = W_enc.new_zeros(W_enc.shape[1]).index_copy_(0, block, sums)
            if need_b_dec:
                grad_b_dec = -(W_enc.index_select(1, block) @ sums)
        if need_x:
            grad_x = grad_codes @ W_enc.index_select(1, block).t()
        return grad_x, grad_b_dec, grad_W_enc, grad_b_enc, grad_W_dec, None, None


def block_decode(
    codes: SparseCodes, x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, block: Tensor
) -> Tensor:  # fmt: skip
    """Differentiable decode (no bias) of kept encoder codes whose latents all lie in ``block`` (ascending)."""
    return BlockDecode.apply(x, b_dec, W_enc, b_enc, W_dec, codes, block)
