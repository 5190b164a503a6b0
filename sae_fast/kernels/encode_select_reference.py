"""Plain-torch spec of the encoder and of ``encode_select``: encode, then select.

``encode`` is ``relu((x - b_dec) @ W_enc + b_enc)`` in one ``[n, d_sae]`` buffer (bias add and
relu in place: at n = 4096, d_sae = 98304 a second temporary would be 1.5 GiB). ``encode_select``
is that buffer followed by the rule's selection and, given ``aux_latents``, the aux loss's per-row
top-``aux_k`` among those columns. The CPU and Triton versions must keep exactly the same entries.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.kernels import select_reference
from sae_fast.kernels.selection_rule import EncodedSelection, SelectionRule


@torch.no_grad()
def encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
    """``relu((x - b_dec) @ W_enc + b_enc)`` for ``x`` ``[n, d_in]`` → ``[n, d_sae]`` (no autograd)."""
    return torch.addmm(b_enc, x - b_dec, W_enc).relu_()


@torch.no_grad()
def encode_select(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, rule: SelectionRule,
    aux_latents: Tensor | None = None, aux_k: int = 0,
) -> EncodedSelection:  # fmt: skip
    """Codes of ``x`` under ``rule``, and the aux codes among ``aux_latents`` (ascending int64) if given."""
    pre = encode(x, W_enc, b_enc, b_dec)
    codes = rule.apply(select_reference, pre)
    aux_codes = None if aux_latents is None else select_reference.subset_topk_select(pre, aux_latents, aux_k)
    return EncodedSelection(codes, aux_codes)
