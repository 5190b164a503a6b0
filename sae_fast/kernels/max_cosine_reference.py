"""Brute-force decoder-cosine statistics: the specification the blocked and Triton paths must match.

These functions materialise the full ``[m1, m0]`` cosine matrix, so they are only for tests and
small inputs. The conventions they define are shared by every backend:

- Rows are compared by cosine similarity ``<q, k> / (|q| |k|)``.
- A zero-norm row (query or key) has cosine exactly 0 with every row (see
  :mod:`sae_fast.kernels.cosine_rows`).
- Ties go to the lowest key index (so a zero query's argmax is key 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.kernels.cosine_rows import cosine_matrix


def max_cosine_similarity(queries: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """``(max_cos [m1], argmax [m1])`` over keys, ties to the lowest key index."""
    cos = cosine_matrix(queries, keys)
    # torch.max along a dim returns the first maximal index, i.e. the lowest key index.
    values, indices = cos.max(dim=1)
    return values, indices


def top_n_cosine_neighbours(queries: Tensor, keys: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The ``n`` most similar keys per query, descending; ties to the lower key index."""
    cos = cosine_matrix(queries, keys)
    order = torch.sort(cos, dim=1, descending=True, stable=True)
    return order.values[:, :n], order.indices[:, :n]


def cosine_pairs_above(queries: Tensor, keys: Tensor, tau: float) -> tuple[Tensor, Tensor, Tensor]:
    """All ``(query_idx, key_idx, cos)`` with ``cos >= tau``, sorted by query then key."""
    cos = cosine_matrix(queries, keys)
    q_idx, k_idx = (cos >= tau).nonzero(as_tuple=True)
    return q_idx, k_idx, cos[q_idx, k_idx]
