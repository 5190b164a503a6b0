"""The reconstruction metrics of an SAE, from float64 sums accumulated batch by batch.

Over ``N`` tokens ``x_t`` ``[d_in]`` with reconstructions ``x_hat_t`` and active-latent counts ``L0_t``:

- ``MSE = sum_t ||x_t - x_hat_t||^2 / (N * d_in)`` (per token and dimension);
- ``NMSE = sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2`` with ``mean(x)`` over the same
  tokens, so predicting the mean scores 1; the fraction of variance explained is ``1 - NMSE``;
- ``mean L0 = (1/N) sum_t L0_t``, and the histogram ``h[j] = #{t : L0_t = j}``.

The variance is accumulated around a shift ``c`` (the first batch's mean), using
``sum ||x - mean||^2 = sum ||x - c||^2 - ||sum (x - c)||^2 / N``, which stays accurate when the
activations have a large mean. Training logs, held-out evaluation and stitching all use these sums,
in whichever space they measure (the SAE's normalised space or the input space).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sae_fast.validation import check_positive_int


class ReconstructionSums:
    """Running sums over ``[n, d_in]`` batches of tokens and their reconstructions (see the module doc)."""

    def __init__(self, d_in: int) -> None:
        self.d_in = check_positive_int(d_in, "d_in")
        self.n_tokens = 0
        self.squared_error = 0.0
        self.shift: Tensor | None = None
        self.shifted_sum: Tensor | None = None
        self.shifted_sq_sum = 0.0
        self.l0_histogram = torch.zeros(1, dtype=torch.int64)

    @torch.no_grad()
    def add(self, x: Tensor, x_hat: Tensor, active_counts: Tensor | None = None) -> Tensor:
        """Add tokens ``x`` reconstructed as ``x_hat`` (both ``[n, d_in]``) with ``active_counts`` ``[n]``
        latents each (optional: without them there is no L0); returns each token's squared error ``[n]``
        (float64)."""
        if x.dim() != 2 or x.shape[1] != self.d_in or x_hat.shape != x.shape:
            raise ValueError(
                f"x and x_hat must both be [n_tokens, {self.d_in}], got {tuple(x.shape)} and {tuple(x_hat.shape)}"
            )
        if active_counts is not None and active_counts.shape != (x.shape[0],):
            raise ValueError(f"active_counts must be [{x.shape[0]}] (one per token), got {tuple(active_counts.shape)}")
        x64 = x.double()
        token_squared_error = (x64 - x_hat.double()).pow(2).sum(dim=1)
        self.squared_error += float(token_squared_error.sum())
        if self.shift is None:
            self.shift = x64.mean(dim=0)
            self.shifted_sum = torch.zeros_like(self.shift)
        centred = x64 - self.shift
        self.shifted_sum += centred.sum(dim=0)
        self.shifted_sq_sum += float(centred.pow(2).sum())
        if active_counts is not None:
            self._count_l0(active_counts)
        self.n_tokens += x.shape[0]
        return token_squared_error

    def _count_l0(self, active_counts: Tensor) -> None:
        counts = torch.bincount(active_counts.cpu())
        if counts.numel() > self.l0_histogram.numel():
            counts[: self.l0_histogram.numel()] += self.l0_histogram
            self.l0_histogram = counts
        else:
            self.l0_histogram[: counts.numel()] += counts

    def _require_tokens(self) -> None:
        if self.n_tokens == 0:
            raise ValueError("no tokens were added; call add(x, x_hat) with at least one token first")

    @property
    def total_variance(self) -> float:
        """``sum_t ||x_t - mean(x)||^2``."""
        self._require_tokens()
        return self.shifted_sq_sum - float(self.shifted_sum.pow(2).sum()) / self.n_tokens

    @property
    def mean(self) -> Tensor:
        """Mean token ``[d_in]`` (float64)."""
        self._require_tokens()
        return self.shift + self.shifted_sum / self.n_tokens

    def mse(self) -> float:
        self._require_tokens()
        return self.squared_error / (self.n_tokens * self.d_in)

    def nmse(self) -> float:
        """NaN when the tokens have no variance (every token the same)."""
        variance = self.total_variance
        return self.squared_error / variance if variance > 0 else math.nan

    def fraction_variance_explained(self) -> float:
        return 1.0 - self.nmse()

    def mean_l0(self) -> float:
        self._require_tokens()
        if int(self.l0_histogram.sum()) != self.n_tokens:
            raise ValueError("mean_l0 needs active_counts for every batch passed to add")
        levels = torch.arange(self.l0_histogram.numel(), dtype=torch.float64)
        return float((levels * self.l0_histogram.double()).sum()) / self.n_tokens
