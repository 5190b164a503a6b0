"""Read a trained meta-SAE: every SAE latent as a weighted sum of meta-latents, and the reverse.

Decompositions use the meta-SAE in eval mode (BatchTopK's threshold theta), so a latent's
decomposition never depends on which other rows happen to share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.eval_mode import eval_mode
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_int


@dataclass(frozen=True)
class Decomposition:
    """SAE latent ``latent`` ≈ ``sum_j weights[j] * meta_W_dec[meta_latents[j]] + meta_b_dec``.

    Meta-latents are listed by decreasing weight. ``cosine`` compares that reconstruction with the
    (unit) decoder row it approximates.
    """

    latent: int
    meta_latents: Tensor  # int64 [n_active]
    weights: Tensor  # [n_active]
    reconstruction: Tensor  # [d_in]
    cosine: float

    def to_dict(self) -> dict:
        return {
            "latent": self.latent,
            "meta_latents": self.meta_latents.tolist(),
            "weights": [round(w, 6) for w in self.weights.tolist()],
            "cosine": self.cosine,
        }


def encode_rows(meta_sae: SparseAutoencoder, rows: Tensor, chunk_size: int = 8192) -> SparseCodes:
    """Eval-mode sparse codes of ``rows`` (chunked, so memory stays ``chunk_size x d_meta``)."""
    with eval_mode(meta_sae):
        parts = [meta_sae.encode_sparse(chunk.to(meta_sae.device)) for chunk in rows.split(chunk_size)]
    offsets = [parts[0].row_offsets]
    shift = parts[0].row_offsets[-1]
    for part in parts[1:]:
        offsets.append(part.row_offsets[1:] + shift)
        shift = shift + part.row_offsets[-1]
    return SparseCodes(
        torch.cat(offsets), torch.cat([p.latent_indices for p in parts]), torch.cat([p.values for p in parts]),
        meta_sae.d_sae,
    )


class MetaDecomposition:
    """All decompositions of an SAE's decoder rows by a meta-SAE, indexable both ways.

    ``codes`` holds, for every SAE latent (a row), its active meta-latents and their weights.
    """

    def __init__(self, meta_sae: SparseAutoencoder, rows: Tensor, chunk_size: int = 8192) -> None:
        if not isinstance(meta_sae, SparseAutoencoder):
            raise TypeError(f"meta_sae must be a SparseAutoencoder, got {type(meta_sae).__name__}")
        if not isinstance(rows, Tensor) or rows.dim() != 2 or rows.shape[1] != meta_sae.d_in:
            raise ValueError(
                f"rows must be the decomposed decoder rows [n_latents, {meta_sae.d_in}] "
                "(see sae_fast.meta.rows_to_decompose)"
            )
        self.meta_sae = meta_sae
        self.rows = rows
        self.codes = encode_rows(meta_sae, rows, chunk_size)
        # Column view (meta-latent -> latents), built once by a stable sort on the meta-latent index.
        self._by_meta = torch.sort(self.codes.latent_indices, stable=True).indices
        counts = torch.bincount(self.codes.latent_indices, minlength=meta_sae.d_sae)
        self._meta_offsets = torch.zeros(meta_sae.d_sae + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, dim=0, out=self._meta_offsets[1:])
        self._token_of_entry = self.codes.token_indices()

    @property
    def n_latents(self) -> int:
        return self.rows.shape[0]

    def meta_latent_counts(self) -> Tensor:
        """How many SAE latents use each meta-latent, int64 ``[d_meta]``."""
        return self._meta_offsets[1:] - self._meta_offsets[:-1]

    def _check_latent(self, latent: int) -> int:
        return check_int(latent, "latent", lower=0, upper=self.n_latents - 1, upper_name="the last latent")

    def of(self, latent: int) -> Decomposition:
        """The decomposition of one SAE latent."""
        latent = self._check_latent(latent)
        lo, hi = int(self.codes.row_offsets[latent]), int(self.codes.row_offsets[latent + 1])
        weights = self.codes.values[lo:hi]
        order = torch.argsort(weights, descending=True, stable=True)
        meta_latents, weights = self.codes.latent_indices[lo:hi][order], weights[order]
        with torch.no_grad():
            reconstruction = weights @ self.meta_sae.W_dec[meta_latents] + self.meta_sae.b_dec
        row = self.rows[latent].to(reconstruction)
        cosine = float(torch.nn.functional.cosine_similarity(row, reconstruction, dim=0))
        return Decomposition(latent, meta_latents.cpu(), weights.detach().cpu(), reconstruction.detach().cpu(), cosine)

    def latents_sharing(self, meta_latent: int) -> tuple[Tensor, Tensor]:
        """SAE latents that use ``meta_latent`` and their weights on it, by decreasing weight."""
        d_meta = self.meta_sae.d_sae
        check_int(meta_latent, "meta_latent", lower=0, upper=d_meta - 1, upper_name="the last meta-latent")
        entries = self._by_meta[self._meta_offsets[meta_latent] : self._meta_offsets[meta_latent + 1]]
        latents, weights = self._token_of_entry[entries], self.codes.values[entries]
        order = torch.argsort(weights, descending=True, stable=True)
        return latents[order].cpu(), weights[order].cpu()

    def neighbours(self, latent: int) -> dict[int, Tensor]:
        """For each meta-latent of ``latent``, the other SAE latents that share it."""
        decomposition = self.of(latent)
        out = {}
        for meta_latent in decomposition.meta_latents.tolist():
            latents, _ = self.latents_sharing(meta_latent)
            out[meta_latent] = latents[latents != latent]
        return out
