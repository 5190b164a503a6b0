"""Reconstruction and sparsity metrics of an SAE on held-out activations, accumulated batch by batch.

Over all ``N`` evaluation tokens ``x_t`` with reconstructions ``x_hat_t`` and active-latent counts
``L0_t``:

- ``NMSE = sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2`` where ``mean(x)`` is the mean
  over the evaluation tokens (so predicting the mean scores 1);
- fraction of variance explained ``FVE = 1 - NMSE``;
- ``normalized MSE``: the mean over tokens and dimensions of the squared error in the SAE's
  normalised space (the paper's "normalised MSE", what training minimises; the plain MSE when the
  SAE does not normalise its inputs);
- ``mean L0 = (1/N) sum_t L0_t`` and the histogram ``h[j] = #{t : L0_t = j}`` (paper Fig. 9);
- dead fraction: latents active on *no* evaluation token, over ``d_sae``.

Sums are accumulated in float64 around a shift ``c`` (the first batch's mean), using
``sum ||x - mean||^2 = sum ||x - c||^2 - ||sum (x - c)||^2 / N``, which stays accurate when the
activations have a large mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.validation import check_activations


class ReconstructionAccumulator:
    """Feeds batches through an SAE in eval mode and keeps the sums the metrics need."""

    def __init__(self, sae: SparseAutoencoder) -> None:
        self.sae = sae
        self.n_tokens = 0
        self.error_sum = 0.0
        self.normalized_error_sum = 0.0
        self.shift: Tensor | None = None
        self.shifted_sum: Tensor | None = None
        self.shifted_sq_sum = 0.0
        self.l0_counts = torch.zeros(1, dtype=torch.int64)
        self.fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=sae.device)

    @torch.no_grad()
    def add(self, x: Tensor) -> None:
        sae = self.sae
        # A plain reshape would cut a wrong-width batch into bogus tokens; the SAE checks finiteness itself.
        x = check_activations(x.to(sae.device), sae.d_in, device=sae.device, check_finite=False, name="activations")
        # One encoder pass for the codes and the reconstruction in both spaces.
        result = sae.reconstruct(x)
        codes = result.codes
        x64 = x.double()
        self.error_sum += float((x64 - result.x_hat.double()).pow(2).sum())
        self.normalized_error_sum += float((result.normalized_x.double() - result.normalized_x_hat.double()).pow(2).sum())
        if self.shift is None:
            self.shift = x64.mean(dim=0)
            self.shifted_sum = torch.zeros_like(self.shift)
        centred = x64 - self.shift
        self.shifted_sum += centred.sum(dim=0)
        self.shifted_sq_sum += float(centred.pow(2).sum())
        counts = torch.bincount(codes.counts().cpu())
        if counts.numel() > self.l0_counts.numel():
            counts[: self.l0_counts.numel()] += self.l0_counts
            self.l0_counts = counts
        else:
            self.l0_counts[: counts.numel()] += counts
        self.fired[codes.latent_indices] = True
        self.n_tokens += x.shape[0]

    @property
    def total_variance(self) -> float:
        """``sum_t ||x_t - mean(x)||^2``."""
        return self.shifted_sq_sum - float(self.shifted_sum.pow(2).sum()) / self.n_tokens

    @property
    def mean(self) -> Tensor:
        """Mean activation of the evaluation tokens (float64)."""
        return self.shift + self.shifted_sum / self.n_tokens

    def nmse(self) -> float:
        variance = self.total_variance
        return self.error_sum / variance if variance > 0 else float("nan")

    def normalized_mse(self) -> float:
        return self.normalized_error_sum / (self.n_tokens * self.sae.d_in)

    def mean_l0(self) -> float:
        levels = torch.arange(self.l0_counts.numel(), dtype=torch.float64)
        return float((levels * self.l0_counts.double()).sum()) / self.n_tokens
