"""Fig. 14: reconstruction MSE of both SAEs on tokens where a novel latent is active vs inactive.

If the small SAE misses what a novel latent encodes, its error should be larger exactly where that
latent fires. Per novel latent we average the per-token MSE over its active and inactive tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.kernels.dispatch import kernel_ops
from sae_fast.sparse_codes import SparseCodes
from sae_fast.stitching.classify import classify_latents
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.stitching.encoded import EncodedEvalSet, encode_eval_set


@dataclass(frozen=True)
class NovelLatentMSE:
    """Per novel latent that fires at least once and not on every token (NaN-free)."""

    latents: Tensor  # large-SAE indices
    small_active: Tensor
    small_inactive: Tensor
    large_active: Tensor
    large_inactive: Tensor
    n_novel: int  # novel latents before dropping those with an empty active or inactive set
    threshold: float


def _token_mse(x: Tensor, codes: SparseCodes, W: Tensor, b: Tensor) -> Tensor:
    f64 = torch.float64
    ops = kernel_ops(W.device, "auto", f64)
    recon = ops.sparse_decode(codes.with_values(codes.values.to(f64)), W.detach().to(f64), b.detach().to(f64))
    return (x.to(f64) - recon).pow(2).mean(dim=1)


def _active_inactive_means(token_mse: Tensor, codes: SparseCodes, latents: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    sums = torch.zeros(codes.d_sae, dtype=torch.float64, device=token_mse.device)
    sums.index_add_(0, codes.latent_indices, token_mse[codes.token_indices()])
    counts = torch.bincount(codes.latent_indices, minlength=codes.d_sae).double()
    n = token_mse.numel()
    active = sums[latents] / counts[latents]
    inactive = (token_mse.sum() - sums[latents]) / (n - counts[latents])
    return active, inactive, counts[latents]


@torch.no_grad()
def novel_latent_mse(
    small: nn.Module, large: nn.Module, x: Tensor | EncodedEvalSet, config: StitchingConfig | float | None = None,
    **fields: Any,
) -> NovelLatentMSE:
    """Both SAEs' MSE on the tokens where each novel latent fires and where it does not (Fig. 14).

    ``config`` gives the threshold (a bare number is the threshold), ``encode_batch_size`` and
    ``block_size``; ``fields`` replace its fields.
    """
    config = as_stitching_config(config, **fields)
    threshold = config.threshold
    encoded = x if isinstance(x, EncodedEvalSet) else encode_eval_set(small, large, x, config)
    novel = classify_latents(small, large, config).novel_indices.to(encoded.x.device)
    mse0 = _token_mse(encoded.x, encoded.small_codes, small.W_dec, small.b_dec)
    mse1 = _token_mse(encoded.x, encoded.large_codes, large.W_dec, large.b_dec)
    s_act, s_in, counts = _active_inactive_means(mse0, encoded.large_codes, novel)
    l_act, l_in, _ = _active_inactive_means(mse1, encoded.large_codes, novel)
    keep = (counts > 0) & (counts < encoded.n_tokens)
    return NovelLatentMSE(novel[keep], s_act[keep], s_in[keep], l_act[keep], l_in[keep], novel.numel(), float(threshold))
