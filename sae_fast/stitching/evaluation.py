"""From-scratch reconstruction statistics, the ground truth the incremental path is checked against."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sae_fast.sae.eval_mode import eval_mode
from sae_fast.sae.reconstruction_sums import ReconstructionSums
from sae_fast.validation import check_positive_int


@dataclass(frozen=True)
class ReconstructionStats:
    mse: float  # mean over tokens and dimensions
    l0: float  # mean active latents per token
    token_sq_error: Tensor  # [n] squared error summed over dimensions, per token


@torch.no_grad()
def reconstruction_stats(sae: nn.Module, x: Tensor, batch_size: int = 4096) -> ReconstructionStats:
    """MSE, L0 and per-token squared error of an SAE or a StitchedSAE (anything with ``reconstruct``).

    Errors are measured in the SAE's normalised space, as every stitching statistic is; each batch
    is encoded once (``reconstruct`` returns the codes with the reconstruction).
    """
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be activations [n_tokens, d_in], got {getattr(x, 'shape', type(x).__name__)}")
    check_positive_int(batch_size, "batch_size")
    sums = ReconstructionSums(x.shape[1])
    errors = []
    with eval_mode(sae):
        for start in range(0, x.shape[0], batch_size):
            result = sae.reconstruct(x[start : start + batch_size])
            errors.append(sums.add(result.normalized_x, result.normalized_x_hat, result.codes.counts()))
    return ReconstructionStats(mse=sums.mse(), l0=sums.mean_l0(), token_sq_error=torch.cat(errors))
