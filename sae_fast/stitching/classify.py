"""Novel vs reconstruction latents of a larger SAE, by max decoder cosine to a smaller SAE (eq. 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from sae_fast.similarity import max_cosine_similarity
from sae_fast.sae.decoder_rows import decoder_rows
from sae_fast.stitching.config import StitchingConfig, as_stitching_config


@dataclass(frozen=True)
class LatentClassification:
    """Per large-SAE latent: its nearest small-SAE latent and whether it is novel.

    ``novel_mask[i]`` is ``max_cos[i] < threshold``; reconstruction latents are the rest.
    """

    max_cos: Tensor  # [m1] float
    nearest_small: Tensor  # [m1] int64, argmax over the small SAE's latents
    novel_mask: Tensor  # [m1] bool
    threshold: float

    @property
    def novel_indices(self) -> Tensor:
        return self.novel_mask.nonzero(as_tuple=True)[0]

    @property
    def reconstruction_indices(self) -> Tensor:
        return (~self.novel_mask).nonzero(as_tuple=True)[0]

    @property
    def novel_fraction(self) -> float:
        return float(self.novel_mask.float().mean()) if self.novel_mask.numel() else 0.0


def classify_latents(
    small: nn.Module | Tensor,
    large: nn.Module | Tensor,
    config: StitchingConfig | float | None = None,
    *,
    exact: bool = True,
    **fields: Any,
) -> LatentClassification:
    """Classify every latent of ``large`` against the decoder directions of ``small``.

    Args:
        small, large: SAEs (anything with ``W_dec``) or decoder matrices ``[d_sae, d_in]``.
        config: its ``threshold`` (0.7 in the paper for GPT-2 SAEs, 0.4 for Gemma Scope) and
            ``block_size``; a bare number is the threshold; ``fields`` replace config fields.
        exact: fp32 products on GPU (cosines near the threshold should not flip with tf32).
    """
    config = as_stitching_config(config, **fields)
    W0, W1 = decoder_rows(small, "small"), decoder_rows(large, "large")
    max_cos, nearest = max_cosine_similarity(W1, W0, exact=exact, block_size=config.block_size)
    return LatentClassification(max_cos, nearest, max_cos < float(config.threshold), float(config.threshold))


def reconstruction_fraction(
    queries: nn.Module | Tensor, keys: nn.Module | Tensor, config: StitchingConfig | float | None = None,
    **kwargs: Any,
) -> float:
    """Fraction of ``queries``' latents whose max cosine to ``keys`` is ``>= config.threshold``."""
    return 1.0 - classify_latents(keys, queries, config, **kwargs).novel_fraction


__all__ = ["LatentClassification", "classify_latents", "reconstruction_fraction"]
