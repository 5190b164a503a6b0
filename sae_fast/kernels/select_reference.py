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


def subset_topk_select(pre: Tensor, latents: Tensor, k: int) -> SparseCodes:
    """Per row, keep the ``k`` largest positive entries among the columns ``latents`` only.

    ``latents`` is a strictly ascending int64 index set (the aux loss passes the dead latents);
    the result is indexed over all ``d_sae`` columns, so it equals ``topk_select`` of ``pre`` with
    every other column zeroed, and ties still go to the lower column.
    """
    latents = check_latent_subset(latents, pre.shape[1], pre.device)
    codes = topk_select(pre.index_select(1, latents), k)
    # Ascending latents keep each row's entries ascending after the relabelling.
    return SparseCodes(codes.row_offsets, latents[codes.latent_indices], codes.values, pre.shape[1])


def check_latent_subset(latents: object, d_sae: int, device: torch.device) -> Tensor:
    """Validate a column subset for :func:`subset_topk_select`; returns it contiguous."""
    if not isinstance(latents, Tensor):
        raise TypeError(f"latents must be an int64 torch.Tensor, got {type(latents).__name__}")
    if latents.dtype != torch.int64 or latents.dim() != 1:
        raise TypeError(
            f"latents must be a 1-D int64 tensor of column indices, got {latents.dtype} of shape "
            f"{tuple(latents.shape)} (e.g. mask.nonzero().flatten())"
        )
    if latents.device != device:
        raise ValueError(f"latents is on {latents.device} but pre is on {device}")
    if latents.numel() == 0:
        return latents.contiguous()
    # One host sync on the hot path (called every training step with the dead latents): strictly
    # ascending plus both ends in range implies every index is in range.
    ascending = (latents[1:] > latents[:-1]).all()
    if not bool(ascending & (latents[0] >= 0) & (latents[-1] < d_sae)):
        if not bool(ascending):
            raise ValueError("latents must be strictly ascending (sort and deduplicate with torch.unique)")
        raise ValueError(f"latents must lie in [0, {d_sae}), got [{int(latents[0])}, {int(latents[-1])}]")
    return latents.contiguous()


def threshold_select(pre: Tensor, threshold: Tensor | float) -> SparseCodes:
    """JumpReLU selection: keep entries strictly above ``threshold`` (a scalar or one per latent)."""
    threshold = torch.as_tensor(threshold, dtype=pre.dtype, device=pre.device)
    return SparseCodes.from_mask(pre, (pre > threshold) & (pre > 0))


def smallest_kept_value(codes: SparseCodes) -> Tensor | None:
    """The smallest kept activation of a batch (what BatchTopK's theta averages), or None if empty."""
    if codes.nnz == 0:
        return None
    return codes.values.min()
