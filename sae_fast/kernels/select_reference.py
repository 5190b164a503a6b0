"""Plain-torch selection ops: the specification every selection kernel is tested against.

All three take post-ReLU pre-activations ``pre`` of shape ``[n, d_sae]`` (so every entry is >= 0)
and return :class:`~sae_fast.sparse_codes.SparseCodes`. Only strictly positive entries can be kept:
a zero pre-activation is an inactive latent, never a kept one, so a batch with fewer positive
entries than the budget keeps fewer.

Ties are broken deterministically by position: among equal values the entry with the smaller
row-major flat index (``row * d_sae + col``) wins. Hence exactly ``min(budget, #positive)`` entries
are kept, whatever the ties, and every backend makes the same choice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sparse_codes import SparseCodes


def _rank_mask(values: Tensor, budget: int) -> Tensor:
    """Boolean mask over the last dim of the ``budget`` largest positive entries (ties: lower index)."""
    # A stable descending sort keeps equal values in ascending index order: that is the tie rule.
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices
    keep_sorted = torch.zeros_like(values, dtype=torch.bool)
    keep_sorted[..., : min(budget, values.shape[-1])] = True
    mask = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return mask & (values > 0)


def batch_topk_select(pre: Tensor, k_total: int) -> SparseCodes:
    """Keep the ``k_total`` (= n * k) largest positive entries across the whole batch."""
    mask = _rank_mask(pre.reshape(-1), k_total).reshape(pre.shape)
    return SparseCodes.from_mask(pre, mask)


def topk_select(pre: Tensor, k: int) -> SparseCodes:
    """Keep the ``k`` largest positive entries of every row independently."""
    return SparseCodes.from_mask(pre, _rank_mask(pre, k))


def threshold_select(pre: Tensor, threshold: Tensor | float) -> SparseCodes:
    """JumpReLU selection: keep entries strictly above ``threshold`` (a scalar or one per latent)."""
    threshold = torch.as_tensor(threshold, dtype=pre.dtype, device=pre.device)
    return SparseCodes.from_mask(pre, (pre > threshold) & (pre > 0))


def smallest_kept_value(codes: SparseCodes) -> Tensor | None:
    """The smallest kept activation of a batch (what BatchTopK's theta averages), or None if empty."""
    if codes.nnz == 0:
        return None
    return codes.values.min()
