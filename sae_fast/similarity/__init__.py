"""Decoder-direction similarity between two dictionaries: the workflow-level names of the
kernel-layer ops in :mod:`sae_fast.kernels.max_cosine` (see there for conventions and backends)."""

from sae_fast.kernels.max_cosine import (
    cosine_matrix,
    cosine_pairs_above,
    max_cosine_similarity,
    max_cosine_similarity_reference,
    normalize_rows,
    top_n_cosine_neighbours,
)

__all__ = [
    "cosine_matrix",
    "cosine_pairs_above",
    "max_cosine_similarity",
    "max_cosine_similarity_reference",
    "normalize_rows",
    "top_n_cosine_neighbours",
]
