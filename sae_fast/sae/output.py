"""The named result of one training forward pass, shared by modules, trainers and kernels."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sae_fast.sparse_codes import SparseCodes


@dataclass(frozen=True)
class TrainingOutput:
    """What ``sae.training_loss(x)`` returns.

    ``loss = mse + sparsity_loss + aux_loss``, each term already scaled by its coefficient, so
    logging the parts always adds up to what was optimised (the aux term is counted once). Matryoshka
    SAEs optimise every prefix's reconstruction: their ``loss = nested_mse.sum() + aux_loss``, and
    ``mse == nested_mse[-1]`` stays the whole dictionary's, comparable with every other SAE.
    ``mse`` is the mean over tokens *and* dimensions of ``(x_hat - target)**2``, where ``target`` is the
    input in the SAE's normalised space (the input itself when ``normalize_activations="none"``).
    """

    loss: Tensor  # scalar, differentiable
    mse: Tensor  # scalar, differentiable
    aux_loss: Tensor  # scalar, already multiplied by aux_coefficient (0 when nothing is dead)
    sparsity_loss: Tensor  # scalar, L1 / L0 penalty already multiplied by its coefficient (0 for k-sparse SAEs)
    l0: Tensor  # scalar float: mean active latents per token
    active_counts: Tensor  # int64 [n_tokens]: active latents of each token
    codes: SparseCodes  # kept latents (values detached)
    x_hat: Tensor  # [n_tokens, d_in] reconstruction (differentiable), in the SAE's normalised space
    target: Tensor  # [n_tokens, d_in] what x_hat reconstructs: the (normalised) input tokens
    nested_mse: Tensor | None = None  # Matryoshka: [n_levels] MSE of each prefix's reconstruction; else None
