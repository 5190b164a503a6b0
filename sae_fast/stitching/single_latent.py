"""Fig. 4: the change in MSE from inserting one large-SAE latent into the full small SAE, per latent.

Inserting latent ``j`` gives ``L0 = all small``, ``L1 = {j}``, so the bias weight becomes
``a = m0 / (m0 + 1)`` for every ``j``. With ``u_t = x_t - x_hat_small_t - (1 - a)(b_dec1 - b_dec0)``,
the inserted SAE's error is ``sum_t |u_t|^2 + sum_{t : f_tj > 0} (f_tj^2 |W_j|^2 - 2 f_tj <u_t, W_j>)``,
so all ``m1`` insertions cost one pass over the large SAE's codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.kernels.dispatch import kernel_ops
from sae_fast.stitching.classify import classify_latents
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.stitching.encoded import EncodedEvalSet, encode_eval_set


@dataclass(frozen=True)
class SingleLatentEffects:
    """Per large-SAE latent: max decoder cosine to the small SAE and the MSE change of inserting it."""

    max_cos: Tensor  # [m1]
    delta_mse: Tensor  # [m1] float64, inserted MSE - small-SAE MSE
    small_mse: float
    firing_counts: Tensor  # [m1] tokens on which each latent fires in the evaluation set
    threshold: float


@torch.no_grad()
def single_latent_insertion_effects(
    small: nn.Module, large: nn.Module, x: Tensor | EncodedEvalSet, config: StitchingConfig | float | None = None,
    **fields: Any,
) -> SingleLatentEffects:
    """Each large latent's MSE change when inserted alone into the small SAE, with its max cosine (Fig. 4).

    ``config`` gives the threshold (a bare number is the threshold), ``encode_batch_size`` and
    ``block_size``; ``fields`` replace its fields.
    """
    config = as_stitching_config(config, **fields)
    encoded = x if isinstance(x, EncodedEvalSet) else encode_eval_set(small, large, x, config)
    f64 = torch.float64
    W0, W1 = small.W_dec.detach().to(f64), large.W_dec.detach().to(f64)
    b0, b1 = small.b_dec.detach().to(f64), large.b_dec.detach().to(f64)
    c0, c1 = encoded.small_codes, encoded.large_codes
    x64 = encoded.x.to(f64)
    n, d = x64.shape
    ops = kernel_ops(x64.device, "auto", f64)
    small_residual = x64 - ops.sparse_decode(c0.with_values(c0.values.to(f64)), W0, b0)
    small_mse = float(small_residual.pow(2).sum()) / (n * d)
    a = W0.shape[0] / (W0.shape[0] + 1)
    u = small_residual - (1 - a) * (b1 - b0)
    v = c1.values.to(f64)
    per_entry = v.pow(2) * W1.pow(2).sum(dim=1)[c1.latent_indices] - 2 * v * ops.sparse_row_dots(c1, u, W1)
    change = torch.zeros(W1.shape[0], dtype=f64, device=u.device).index_add_(0, c1.latent_indices, per_entry)
    inserted_mse = (float(u.pow(2).sum()) + change) / (n * d)
    classification = classify_latents(small, large, config)
    return SingleLatentEffects(
        max_cos=classification.max_cos,
        delta_mse=inserted_mse - small_mse,
        small_mse=small_mse,
        firing_counts=torch.bincount(c1.latent_indices, minlength=W1.shape[0]),
        threshold=classification.threshold,
    )
