"""The meta-SAE's data set: the decoder rows of another SAE, revisited for many seeded epochs."""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.training.data import ShuffledBatches


def decoder_rows(source: SparseAutoencoder | Tensor, normalize: bool = True) -> Tensor:
    """The rows ``[d_sae, d_in]`` to decompose, detached, in fp32, optionally unit-norm.

    ``source`` is an SAE (its ``W_dec`` is used) or a decoder matrix itself.
    """
    W = source.W_dec if isinstance(source, SparseAutoencoder) else source
    if not isinstance(W, Tensor) or W.dim() != 2 or not W.is_floating_point():
        raise TypeError(
            "source must be a SparseAutoencoder or a 2-D floating tensor of decoder rows [d_sae, d_in], "
            f"got {type(source).__name__}"
        )
    if W.shape[0] < 2:
        raise ValueError(f"need at least 2 decoder rows to train a meta-SAE, got {W.shape[0]}")
    rows = W.detach().to(torch.float32).clone()
    if not torch.isfinite(rows).all():
        raise ValueError("the decoder contains NaN or Inf; it cannot be decomposed")
    if normalize:
        norms = rows.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            raise ValueError(
                f"{int((norms == 0).sum())} decoder rows are zero; drop them or pass normalize_rows=False"
            )
        rows /= norms
    return rows


def decoder_row_batches(rows: Tensor, batch_size: int, epochs: int, seed: int) -> ShuffledBatches:
    """``epochs`` passes over ``rows``, each in the order of a permutation seeded by ``(seed, epoch)``.

    Every batch has ``min(batch_size, n_rows)`` rows so BatchTopK's budget is the same each step;
    when ``n_rows`` is not a multiple of it, each epoch leaves out a different few rows.
    """
    return ShuffledBatches(rows, min(batch_size, rows.shape[0]), seed=seed, epochs=epochs)
