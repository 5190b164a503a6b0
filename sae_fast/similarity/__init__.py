"""Decoder-direction similarity between two dictionaries, without materialising ``[m1, m0]``.

Public entry points (all take ``queries [m1, d]`` and ``keys [m0, d]`` float tensors on one device):

- :func:`max_cosine_similarity`  -> ``(max_cos [m1], argmax [m1])``
- :func:`top_n_cosine_neighbours` -> ``(values [m1, n], indices [m1, n])``, descending
- :func:`cosine_pairs_above`      -> ``(query_idx, key_idx, cos)`` of every pair with ``cos >= tau``

Conventions shared by every backend (see :mod:`.max_cosine_reference`): a zero-norm row has
cosine exactly 0 with every row; ties go to the lowest key index (so a zero query's argmax is 0);
pairs are returned sorted by query index, then key index. Inputs may be Parameters (e.g. an SAE's
``W_dec``): the statistics are measurements, so they are computed without autograd and carry no grad.

Backends: ``"blocked"`` (plain torch, one tile at a time; the CPU path, correct on any device) and
``"triton"`` (a fused kernel for CUDA; on CPU only under ``TRITON_INTERPRET=1``). ``"auto"`` picks
Triton for CUDA tensors and the blocked path otherwise.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sae_fast.similarity.max_cosine_cpu import (
    cosine_pairs_above_blocked,
    max_cosine_similarity_blocked,
    top_n_cosine_neighbours_blocked,
)
from sae_fast.similarity.max_cosine_reference import (
    cosine_matrix,
    max_cosine_similarity_reference,
    normalize_rows,
    validate_queries_and_keys,
)
from sae_fast.similarity.max_cosine_triton import default_precision, max_cosine_similarity_triton

Backend = Literal["auto", "blocked", "triton"]

__all__ = [
    "cosine_matrix",
    "cosine_pairs_above",
    "max_cosine_similarity",
    "max_cosine_similarity_reference",
    "normalize_rows",
    "top_n_cosine_neighbours",
]


def _resolve_backend(backend: str, queries: Tensor) -> str:
    if backend not in ("auto", "blocked", "triton"):
        raise ValueError(f"backend must be 'auto', 'blocked' or 'triton', got {backend!r}")
    if backend == "auto":
        return "triton" if queries.is_cuda else "blocked"
    return backend


@torch.no_grad()
def max_cosine_similarity(
    queries: Tensor,
    keys: Tensor,
    *,
    exact: bool = False,
    block_size: int | tuple[int, int] | None = None,
    backend: Backend = "auto",
) -> tuple[Tensor, Tensor]:
    """For each query row, the largest cosine similarity to any key row and that key's index.

    Args:
        queries: ``[m1, d]`` (e.g. the larger SAE's ``W_dec``).
        keys: ``[m0, d]`` (e.g. the smaller SAE's ``W_dec``), at least one row.
        exact: Triton only: fp32 operands with IEEE products. Otherwise tf32 operands (bf16 when an
            input is bf16/fp16), always with fp32 accumulation. The blocked path always computes in
            fp32 (fp64 for fp64 inputs), so ``exact`` does not change it.
        block_size: tile ``(query rows, key rows)`` (an int means both). For Triton these are
            ``(BLOCK_M, BLOCK_N)`` and must be powers of two >= 16.
        backend: ``"auto"``, ``"blocked"`` or ``"triton"``.

    Returns:
        ``(max_cos [m1], argmax [m1] int64)``.
    """
    validate_queries_and_keys(queries, keys)
    if _resolve_backend(backend, queries) == "blocked":
        return max_cosine_similarity_blocked(queries, keys, block_size=block_size)
    tiles = {}
    if block_size is not None:
        bm, bn = (block_size, block_size) if isinstance(block_size, int) else block_size
        tiles = {"block_m": bm, "block_n": bn}
    return max_cosine_similarity_triton(
        queries, keys, precision=default_precision(queries, keys, exact), **tiles
    )


@torch.no_grad()
def top_n_cosine_neighbours(
    queries: Tensor, keys: Tensor, n: int, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """The ``n`` most similar keys of every query: ``(values [m1, n], indices [m1, n])``, descending.

    Ties go to the lower key index. ``n`` must be between 1 and ``m0``.
    """
    validate_queries_and_keys(queries, keys)
    if not isinstance(n, int) or not 1 <= n <= keys.shape[0]:
        raise ValueError(f"n must be an int in [1, {keys.shape[0]}] (the number of keys), got {n!r}")
    return top_n_cosine_neighbours_blocked(queries, keys, n, block_size=block_size)


@torch.no_grad()
def cosine_pairs_above(
    queries: Tensor, keys: Tensor, tau: float, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Every pair with ``cos >= tau`` as ``(query_idx, key_idx, cos)``, sorted by query then key.

    Built tile by tile, so memory is proportional to the number of pairs found, not ``m1 * m0``.
    """
    validate_queries_and_keys(queries, keys)
    if not -1.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be a cosine in [-1, 1], got {tau}")
    return cosine_pairs_above_blocked(queries, keys, float(tau), block_size=block_size)
