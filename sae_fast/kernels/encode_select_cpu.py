"""``encode_select`` on CPU: the encoder product in row blocks of bounded memory, each selected by the C++ ops.

The spec (:mod:`~sae_fast.kernels.encode_select_reference`) materialises ``pre`` ``[n, d_sae]``
(1.5 GiB at n = 4096, d_sae = 98304) and then reads it for every selection. Here each block of rows
is computed by the BLAS product into one reused buffer of at most ``BLOCK_BYTES`` and selected by
the C++ ops at once:

- per-row rules (top-k, threshold) and the aux loss's per-row top-k are exact per block;
- the batch top-(n·k) keeps candidates: every entry of the global top-K is in its own block's top-K
  (the order is the same within a block), so the top-K of (candidates so far ∪ this block's
  top-K) is exact. Candidates stay in flat-index order, so the tie rule (lower flat index wins)
  is the C++ select's own rule on the candidate row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.kernels import cpu
from sae_fast.kernels.encode_select_reference import encode
from sae_fast.kernels.selection_rule import EncodedSelection, SelectionRule
from sae_fast.sparse_codes import SparseCodes

BLOCK_BYTES = 512 * 2**20
"""Largest block of pre-activations. Blocks cap memory, they do not save time: at n = 4096,
d_sae = 24576 on 2 cores, encode + batch top-k + aux select took 1.43-1.51 s unblocked against
1.48-1.52 s in 128 MiB blocks, 1.75 s in 32 MiB and 2.53 s in 8 MiB blocks (each block's
selection and candidate merge has a fixed cost). So a batch whose matrix fits in 512 MiB is one
block, and a larger one (n = 4096 at d_sae = 98304 is 1.5 GiB) is cut to that."""


def block_rows(d_sae: int, itemsize: int = 4) -> int:
    return max(64, BLOCK_BYTES // max(1, d_sae * itemsize))


def _concat_rows(blocks: list[SparseCodes], d_sae: int, like: Tensor) -> SparseCodes:
    """The codes of consecutive row blocks as one batch."""
    offsets, latents, values = [torch.zeros(1, dtype=torch.int64)], [], []
    total = 0
    for codes in blocks:
        offsets.append(codes.row_offsets[1:] + total)
        latents.append(codes.latent_indices)
        values.append(codes.values)
        total += codes.nnz
    return SparseCodes(torch.cat(offsets), torch.cat(latents), torch.cat(values).to(like.dtype), d_sae)


def _flat_to_codes(flat: Tensor, values: Tensor, n: int, d_sae: int) -> SparseCodes:
    """Codes from ascending flat indices ``row * d_sae + col``."""
    rows = torch.div(flat, d_sae, rounding_mode="floor")
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=n), dim=0, out=offsets[1:])
    return SparseCodes(offsets, flat - rows * d_sae, values, d_sae)


@torch.no_grad()
def encode_select(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, rule: SelectionRule,
    aux_latents: Tensor | None = None, aux_k: int = 0, out: Tensor | None = None,
) -> EncodedSelection:  # fmt: skip
    """Same kept entries as the spec, in blocks of at most ``BLOCK_BYTES``; see the module docstring.

    ``out``: a reusable buffer for the (first block of) pre-activations, as in the spec.
    """
    n, d_sae = x.shape[0], W_enc.shape[1]
    rows = block_rows(d_sae, x.element_size())
    if rows >= n:  # one block: the spec's own buffer is no larger than ours would be
        pre = encode(x, W_enc, b_enc, b_dec, out)
        aux_codes = None if aux_latents is None else cpu.subset_topk_select(pre, aux_latents, aux_k)
        return EncodedSelection(rule.apply(cpu, pre), aux_codes)
    centred = x - b_dec
    reusable = out is not None and out.dtype == x.dtype and out.dim() == 2 and out.shape[1] == d_sae
    buffer = out if reusable and out.shape[0] >= rows else torch.empty(rows, d_sae, dtype=x.dtype)
    blocks, aux_blocks = [], []
    flat, kept = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=x.dtype)
    for first in range(0, n, rows):
        last = min(n, first + rows)
        pre = torch.mm(centred[first:last], W_enc, out=buffer[: last - first]).add_(b_enc).relu_()
        if rule.kind == "batch_topk":
            block = cpu.batch_topk_select(pre, rule.value)
            flat = torch.cat([flat, (block.token_indices() + first) * d_sae + block.latent_indices])
            kept = torch.cat([kept, block.values])
            if kept.numel() > rule.value:
                survivors = cpu.batch_topk_select(kept.unsqueeze(0), rule.value).latent_indices
                flat, kept = flat[survivors], kept[survivors]
        else:
            blocks.append(rule.apply(cpu, pre))
        if aux_latents is not None:
            aux_blocks.append(cpu.subset_topk_select(pre, aux_latents, aux_k))
    if rule.kind == "batch_topk":
        codes = _flat_to_codes(flat, kept, n, d_sae)
    else:
        codes = _concat_rows(blocks, d_sae, x)
    aux_codes = None if aux_latents is None else _concat_rows(aux_blocks, d_sae, x)
    return EncodedSelection(codes, aux_codes)
