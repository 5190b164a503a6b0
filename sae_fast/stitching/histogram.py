"""Fig. 10 and Fig. 19: distributions and fractions of max decoder cosine between SAEs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.stitching.classify import classify_latents, reconstruction_fraction
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.validation import check_positive_int


@dataclass(frozen=True)
class MaxCosineHistogram:
    counts: Tensor  # [bins] int64
    edges: Tensor  # [bins + 1]
    max_cos: Tensor  # [m1]
    n_novel: int
    threshold: float


def max_cosine_histogram(
    small: nn.Module | Tensor, large: nn.Module | Tensor, config: StitchingConfig | float | None = None, *,
    bins: int = 50, **fields: Any,
) -> MaxCosineHistogram:
    """Histogram over ``[-1, 1]`` of each large latent's max decoder cosine to the small SAE, in ``bins`` bins.

    ``config`` (a bare number is its threshold; ``fields`` replace its fields) splits novel from reconstruction.
    """
    check_positive_int(bins, "bins")
    cls = classify_latents(small, large, config, **fields)
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)
    counts = torch.histogram(cls.max_cos.double().cpu().clamp(-1, 1), bins=edges).hist.to(torch.int64)
    return MaxCosineHistogram(counts, edges, cls.max_cos, int(cls.novel_mask.sum()), cls.threshold)


@dataclass(frozen=True)
class ReconstructionFractionMatrix:
    """``fraction[i, j]``: share of SAE i's latents with max decoder cosine ``>= threshold`` to SAE j."""

    fraction: Tensor  # [k, k] float64
    labels: list[str]
    threshold: float


def reconstruction_fraction_matrix(
    saes: list[nn.Module | Tensor], labels: list[str] | None = None, config: StitchingConfig | float | None = None,
    **fields: Any,
) -> ReconstructionFractionMatrix:
    """All ordered pairs of ``saes`` (Fig. 19: same size different seeds, or different sizes).

    ``config`` gives the threshold (a bare number is the threshold); ``fields`` replace its fields.
    """
    config = as_stitching_config(config, **fields)
    k = len(saes)
    if k == 0:
        raise ValueError("reconstruction_fraction_matrix needs at least one SAE")
    labels = labels if labels is not None else [str(i) for i in range(k)]
    if len(labels) != k:
        raise ValueError(f"got {len(labels)} labels for {k} SAEs")
    fraction = torch.empty(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            fraction[i, j] = reconstruction_fraction(saes[i], saes[j], config)
    return ReconstructionFractionMatrix(fraction, list(labels), float(config.threshold))
