"""Fig. 6: how close are meta-latents to the latents of SAEs trained directly on activations?

If large-SAE latents are compositions of smaller-SAE latents, a meta-SAE's dictionary should
resemble the dictionary of an SAE of similar size: most meta-latents then have a near-parallel
latent there (a high maximum cosine), more so than in SAEs of very different sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.similarity import max_cosine_similarity

HISTOGRAM_BINS = 40


@dataclass(frozen=True)
class MaxCosineDistribution:
    """For every meta-latent, the best cosine to any latent of one reference dictionary."""

    name: str
    d_reference: int
    max_cos: Tensor  # [d_meta]
    argmax: Tensor  # [d_meta]

    def summary(self, thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)) -> dict:
        q = torch.quantile(self.max_cos.double(), torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=torch.float64))
        # Rounding can put a parallel pair at 1 + eps, which histc would silently drop.
        counts = torch.histc(self.max_cos.float().clamp(-1.0, 1.0), bins=HISTOGRAM_BINS, min=-1.0, max=1.0)
        return {
            "name": self.name,
            "d_reference": self.d_reference,
            "mean": float(self.max_cos.mean()),
            "quantiles": dict(zip(("p10", "p25", "p50", "p75", "p90"), q.tolist())),
            "fraction_above": {str(t): float((self.max_cos >= t).float().mean()) for t in thresholds},
            "distinct_nearest": int(self.argmax.unique().numel()),
            "histogram": {"bins": HISTOGRAM_BINS, "range": [-1.0, 1.0], "counts": counts.int().tolist()},
        }


def _decoder(reference: SparseAutoencoder | Tensor) -> Tensor:
    W = reference.W_dec if isinstance(reference, SparseAutoencoder) else reference
    if not isinstance(W, Tensor) or W.dim() != 2:
        raise TypeError("references must be SAEs or decoder matrices [d_sae, d_in]")
    return W.detach()


def compare_with_saes(
    meta_sae: SparseAutoencoder | Tensor, references: Mapping[str, SparseAutoencoder | Tensor]
) -> dict[str, MaxCosineDistribution]:
    """Max-cosine distribution of the meta-latents against each named reference dictionary."""
    if not references:
        raise ValueError("references is empty: pass {name: sae_or_W_dec} for at least one SAE")
    meta_W = _decoder(meta_sae)
    out = {}
    for name, reference in references.items():
        keys = _decoder(reference).to(meta_W.device)
        if keys.shape[1] != meta_W.shape[1]:
            raise ValueError(
                f"reference {name!r} has d_in={keys.shape[1]} but the meta-latents have {meta_W.shape[1]}; "
                "compare only SAEs of the same model and hook point"
            )
        max_cos, argmax = max_cosine_similarity(meta_W, keys)
        out[name] = MaxCosineDistribution(name, keys.shape[0], max_cos.cpu(), argmax.cpu())
    return out
