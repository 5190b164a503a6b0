"""The meta-SAE's data set: the decoder rows of another SAE, revisited for many seeded epochs."""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.decoder_rows import decoder_rows
from sae_fast.training.data import ShuffledBatches


def rows_to_decompose(source: SparseAutoencoder | Tensor, normalize: bool = True) -> Tensor:
    """A meta-SAE's training rows: the decoder rows ``[d_sae, d_in]`` of ``source`` (an SAE or the
    decoder matrix itself), copied to fp32 and, with ``normalize``, scaled to unit norm."""
    W = decoder_rows(source, "source")
    if W.shape[0] < 2:
        raise ValueError(f"need at least 2 decoder rows to train a meta-SAE, got {W.shape[0]}")
    rows = W.to(torch.float32).clone()
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
