"""The one sparse format every selection op, kernel and trainer in sae_fast speaks.

Codes are stored row-compressed (CSR) over tokens because every consumer walks them token by token
(decode gathers decoder rows per token; L0 is a per-token count) and because BatchTopK gives each
token a *variable* number of latents, which a fixed ``[n, k]`` layout cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SparseCodes:
    """Kept latents of a batch of ``n`` tokens over a dictionary of ``d_sae`` latents.

    Token ``i`` owns entries ``row_offsets[i]:row_offsets[i + 1]`` of ``latent_indices`` and
    ``values``; inside a row the latent indices are strictly ascending. This canonical order makes
    results of different backends comparable element by element.
    """

    row_offsets: Tensor  # int64 [n + 1]
    latent_indices: Tensor  # int64 [nnz]
    values: Tensor  # floating [nnz]
    d_sae: int

    @property
    def n_tokens(self) -> int:
        return self.row_offsets.numel() - 1

    @property
    def nnz(self) -> int:
        return self.latent_indices.numel()

    def counts(self) -> Tensor:
        """Active latents per token (the per-token L0), int64 ``[n]``."""
        return self.row_offsets[1:] - self.row_offsets[:-1]

    def token_indices(self) -> Tensor:
        """The token each entry belongs to, int64 ``[nnz]`` (COO row indices)."""
        rows = torch.arange(self.n_tokens, device=self.row_offsets.device)
        return torch.repeat_interleave(rows, self.counts(), output_size=self.nnz)

    def with_values(self, values: Tensor) -> SparseCodes:
        """Same sparsity pattern, new values (e.g. values that carry autograd history)."""
        if values.shape != self.latent_indices.shape:
            raise ValueError(
                f"values must have shape {tuple(self.latent_indices.shape)} to match the pattern, "
                f"got {tuple(values.shape)}"
            )
        return SparseCodes(self.row_offsets, self.latent_indices, values, self.d_sae)

    def to_dense(self) -> Tensor:
        """Dense ``[n, d_sae]`` codes; differentiable w.r.t. ``values``."""
        dense = self.values.new_zeros(self.n_tokens, self.d_sae)
        return dense.index_put((self.token_indices(), self.latent_indices), self.values)

    @staticmethod
    def from_mask(dense: Tensor, mask: Tensor) -> SparseCodes:
        """Codes holding ``dense[mask]`` for a 2-D boolean ``mask`` (row-major order is canonical)."""
        if dense.dim() != 2 or mask.shape != dense.shape:
            raise ValueError(
                f"from_mask needs a 2-D tensor and a mask of the same shape, got "
                f"{tuple(dense.shape)} and {tuple(mask.shape)}"
            )
        rows, cols = mask.nonzero(as_tuple=True)
        counts = mask.sum(dim=1)
        row_offsets = torch.zeros(dense.shape[0] + 1, dtype=torch.int64, device=dense.device)
        torch.cumsum(counts, dim=0, out=row_offsets[1:])
        return SparseCodes(row_offsets, cols, dense[rows, cols], dense.shape[1])
