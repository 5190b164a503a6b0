"""Fig. 11: activation similarity vs decoder cosine similarity of each large latent's nearest small latent.

Activation similarity (Bricken et al. 2023) is the cosine between two latents' activation vectors
over the evaluation tokens. Both are sparse, so the dot products are found by looking each large
entry's partner up in the small SAE's CSR (whose ``token * d_sae + latent`` keys are sorted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.sparse_codes import SparseCodes
from sae_fast.stitching.classify import classify_latents
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.stitching.encoded import EncodedEvalSet, encode_eval_set


@dataclass(frozen=True)
class ActivationDecoderSimilarity:
    """Per large latent that fires (and whose partner fires): decoder and activation cosine."""

    latents: Tensor  # large-SAE indices
    partners: Tensor  # small-SAE index with the largest decoder cosine
    decoder_cos: Tensor
    activation_cos: Tensor
    r2: float  # squared Pearson correlation over pairs with decoder_cos > min_decoder_cos
    min_decoder_cos: float
    n_pairs_in_r2: int


def sparse_column_cosines(a: SparseCodes, b: SparseCodes, a_latents: Tensor, b_latents: Tensor) -> Tensor:
    """Cosine over tokens between column ``a_latents[i]`` of ``a`` and column ``b_latents[i]`` of ``b``.

    NaN where either column is all zero.
    """
    f64 = torch.float64
    if a.nnz == 0 or b.nnz == 0:
        return torch.full((a_latents.numel(),), float("nan"), dtype=f64, device=a.values.device)
    partner_of = torch.full((a.d_sae,), -1, dtype=torch.int64, device=a.values.device)
    partner_of[a_latents] = b_latents
    slot_of = torch.full((a.d_sae,), -1, dtype=torch.int64, device=a.values.device)
    slot_of[a_latents] = torch.arange(a_latents.numel(), device=a.values.device)
    tokens = a.token_indices()
    wanted = partner_of[a.latent_indices]
    sel = wanted >= 0
    keys_b = b.token_indices() * b.d_sae + b.latent_indices  # ascending: canonical CSR order
    query = tokens[sel] * b.d_sae + wanted[sel]
    pos = torch.searchsorted(keys_b, query).clamp_max(keys_b.numel() - 1)
    prod = torch.where(keys_b[pos] == query, a.values[sel].to(f64) * b.values[pos].to(f64), 0.0)
    dots = torch.zeros(a_latents.numel(), dtype=f64, device=prod.device).index_add_(0, slot_of[a.latent_indices[sel]], prod)
    norm_a = torch.zeros(a.d_sae, dtype=f64, device=prod.device).index_add_(0, a.latent_indices, a.values.to(f64).pow(2))
    norm_b = torch.zeros(b.d_sae, dtype=f64, device=prod.device).index_add_(0, b.latent_indices, b.values.to(f64).pow(2))
    denom = (norm_a[a_latents] * norm_b[b_latents]).sqrt()
    return torch.where(denom > 0, dots / torch.where(denom > 0, denom, 1.0), float("nan"))


def r_squared(x: Tensor, y: Tensor) -> float:
    """Coefficient of determination of the least-squares line (squared Pearson correlation)."""
    if x.numel() < 2:
        return float("nan")
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float((x @ x) * (y @ y))
    return float((x @ y) ** 2 / denom) if denom > 0 else float("nan")


@torch.no_grad()
def activation_vs_decoder_similarity(
    small: nn.Module, large: nn.Module, x: Tensor | EncodedEvalSet, config: StitchingConfig | None = None,
    **fields: Any,
) -> ActivationDecoderSimilarity:
    """Each large latent's activation cosine to its nearest small latent against their decoder cosine.

    ``config`` gives ``min_decoder_cos`` (the R^2 counts only latents above it), ``encode_batch_size``
    (when ``x`` is raw activations) and ``block_size``; ``fields`` replace its fields.
    """
    config = as_stitching_config(config, number_field="min_decoder_cos", **fields)
    min_decoder_cos = config.min_decoder_cos
    encoded = x if isinstance(x, EncodedEvalSet) else encode_eval_set(small, large, x, config)
    cls = classify_latents(small, large, config)
    latents = torch.arange(large.W_dec.shape[0], device=encoded.x.device)
    partners = cls.nearest_small.to(encoded.x.device)
    act = sparse_column_cosines(encoded.large_codes, encoded.small_codes, latents, partners)
    keep = ~torch.isnan(act)
    dec, act, latents, partners = cls.max_cos[keep].double(), act[keep], latents[keep], partners[keep]
    high = dec > min_decoder_cos
    return ActivationDecoderSimilarity(
        latents, partners, dec, act, r_squared(dec[high], act[high]), float(min_decoder_cos), int(high.sum())
    )
