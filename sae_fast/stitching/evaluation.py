"""From-scratch reconstruction statistics, the ground truth the incremental path is checked against."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sae_fast.sae.eval_mode import eval_mode


@dataclass(frozen=True)
class ReconstructionStats:
    mse: float  # mean over tokens and dimensions
    l0: float  # mean active latents per token
    token_sq_error: Tensor  # [n] squared error summed over dimensions, per token


@torch.no_grad()
def reconstruction_stats(sae: nn.Module, x: Tensor, batch_size: int = 4096) -> ReconstructionStats:
    """MSE, L0 and per-token squared error of an SAE or a StitchedSAE (anything with ``reconstruct``).

    Errors are measured in the SAE's normalised space, as every stitching statistic is.
    """
    errors, counts = [], []
    with eval_mode(sae):
        for start in range(0, x.shape[0], batch_size):
            result = sae.reconstruct(x[start : start + batch_size])
            counts.append(result.codes.counts())
            error = result.normalized_x_hat.to(torch.float64) - result.normalized_x.to(torch.float64)
            errors.append(error.pow(2).sum(dim=1))
    token_sq = torch.cat(errors)
    return ReconstructionStats(
        mse=float(token_sq.mean()) / x.shape[1],
        l0=float(torch.cat(counts).double().mean()),
        token_sq_error=token_sq,
    )
