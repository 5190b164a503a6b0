"""Row normalisation and input checks shared by every decoder-cosine path.

The zero-row convention lives here because every path (reference, blocked, Triton) normalises
with :func:`normalize_rows`: a zero-norm row has cosine exactly 0 with every row. Normalising
such a row would divide by zero; defining its cosine as 0 keeps results finite and matches the
geometric intuition that a zero decoder direction is similar to nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor


def validate_queries_and_keys(queries: Tensor, keys: Tensor) -> None:
    """Raise TypeError/ValueError unless both are finite 2-D float tensors with equal width on one device."""
    for name, t in (("queries", queries), ("keys", keys)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D [rows, d], got shape {tuple(t.shape)}; reshape it first")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {t.dtype}; call .float() first")
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"queries and keys must have the same width d, got {queries.shape[1]} and {keys.shape[1]}"
        )
    if queries.device != keys.device:
        raise ValueError(
            f"queries and keys must be on the same device, got {queries.device} and {keys.device}"
        )
    if keys.shape[0] == 0:
        raise ValueError("keys must have at least one row (the maximum over an empty set is undefined)")
    if not (bool(torch.isfinite(queries).all()) and bool(torch.isfinite(keys).all())):
        raise ValueError("queries and keys must be finite (found NaN or inf)")


def normalize_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit norm in fp32 (at least); zero rows stay zero."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    # where() rather than a clamp: a tiny-but-nonzero row must still become a unit vector.
    return torch.where(norms > 0, x / torch.where(norms > 0, norms, 1), 0)


def cosine_matrix(queries: Tensor, keys: Tensor) -> Tensor:
    """The full ``[m1, m0]`` cosine matrix (memory ``m1 * m0``: for small inputs and tests)."""
    return normalize_rows(queries) @ normalize_rows(keys).T
