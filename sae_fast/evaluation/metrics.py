"""Reconstruction and sparsity metrics of an SAE on held-out activations, accumulated batch by batch.

The formulas (MSE, NMSE, FVE, L0 and its histogram) are those of
:mod:`sae_fast.sae.reconstruction_sums`, measured twice:

- ``NMSE`` (and ``FVE = 1 - NMSE``) compare the input ``x`` with the reconstruction mapped back to
  the input space, against the variance of ``x`` over the evaluation tokens;
- ``normalized MSE`` is the MSE in the SAE's normalised space (the paper's "normalised MSE", what
  training minimises; the plain MSE when the SAE does not normalise its inputs);
- the dead fraction counts latents active on *no* evaluation token, over ``d_sae``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.reconstruction_sums import ReconstructionSums
from sae_fast.validation import check_activations


class ReconstructionAccumulator:
    """Feeds batches through an SAE (in the mode the caller set) and keeps the sums the metrics need."""

    def __init__(self, sae: SparseAutoencoder) -> None:
        if not isinstance(sae, SparseAutoencoder):
            raise TypeError(f"sae must be a SparseAutoencoder, got {type(sae).__name__}")
        self.sae = sae
        self.input_space = ReconstructionSums(sae.d_in)
        self.normalized_space = ReconstructionSums(sae.d_in)
        self.fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=sae.device)

    @torch.no_grad()
    def add(self, x: Tensor) -> None:
        sae = self.sae
        # A plain reshape would cut a wrong-width batch into bogus tokens; the SAE checks finiteness itself.
        x = check_activations(x.to(sae.device), sae.d_in, device=sae.device, check_finite=False, name="activations")
        # One encoder pass for the codes and the reconstruction in both spaces.
        result = sae.reconstruct(x)
        self.input_space.add(x, result.x_hat, result.codes.counts())
        self.normalized_space.add(result.normalized_x, result.normalized_x_hat)
        self.fired[result.codes.latent_indices] = True

    @property
    def n_tokens(self) -> int:
        return self.input_space.n_tokens

    @property
    def l0_counts(self) -> Tensor:
        """``l0_counts[j]``: tokens with exactly ``j`` active latents."""
        return self.input_space.l0_histogram

    @property
    def mean(self) -> Tensor:
        """Mean activation of the evaluation tokens (float64)."""
        return self.input_space.mean

    def nmse(self) -> float:
        return self.input_space.nmse()

    def normalized_mse(self) -> float:
        return self.normalized_space.mse()

    def mean_l0(self) -> float:
        return self.input_space.mean_l0()
