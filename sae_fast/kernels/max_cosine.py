"""Decoder-direction similarity between two dictionaries, without materialising ``[m1, m0]``.

The dispatched ops (all take ``queries [m1, d]`` and ``keys [m0, d]`` float tensors on one device):

- :func:`max_cosine_similarity`  -> ``(max_cos [m1], argmax [m1])``
- :func:`top_n_cosine_neighbours` -> ``(values [m1, n], indices [m1, n])``, descending
- :func:`cosine_pairs_above`      -> ``(query_idx, key_idx, cos)`` of every pair with ``cos >= tau``

Conventions shared by every backend (the spec is :mod:`.max_cosine_reference`): a zero-norm row
has cosine exactly 0 with every row; ties go to the lowest key index (so a zero query's argmax is
0); pairs are returned sorted by query index, then key index. Inputs may be Parameters (e.g. an
SAE's ``W_dec``): the statistics are measurements, so they are computed without autograd.

Backends, in the SAE modules' vocabulary: ``"torch"`` (:mod:`.max_cosine_blocked`, one tile at a
time; the CPU path, correct on any device) and ``"triton"`` (:mod:`.max_cosine_triton`, a fused
kernel for CUDA; on CPU only under ``TRITON_INTERPRET=1``). ``"auto"`` picks Triton for CUDA
tensors below float64 and the blocked path otherwise. There is no C++ kernel: on CPU the blocked
path's BLAS tile products are the fast path. ``"blocked"`` is accepted as the older name of ``"torch"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.kernels import max_cosine_blocked
from sae_fast.kernels.cosine_rows import cosine_matrix, normalize_rows, validate_queries_and_keys
from sae_fast.kernels.max_cosine_reference import max_cosine_similarity as max_cosine_similarity_reference
from sae_fast.kernels.triton_interpreter import interpreting

BACKENDS = ("auto", "torch", "triton")
_OLDER_NAMES = {"blocked": "torch"}

__all__ = [
    "BACKENDS",
    "cosine_matrix",
    "cosine_pairs_above",
    "max_cosine_similarity",
    "max_cosine_similarity_reference",
    "normalize_rows",
    "top_n_cosine_neighbours",
]


def _resolve_backend(backend: str, queries: Tensor, keys: Tensor) -> str:
    backend = _OLDER_NAMES.get(backend, backend)
    if backend == "cpp":
        raise ValueError(
            "max cosine has no C++ kernel: on CPU the blocked plain-torch path is the fast one; "
            "use backend='torch' or 'auto'"
        )
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "triton" and not (queries.is_cuda or interpreting()):
        raise ValueError(
            f"backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 to test on CPU), got {queries.device}"
        )
    if backend == "auto":
        # float64 keeps the blocked path: the kernel computes in fp32 and float64 asks for more.
        wide = torch.float64 in (queries.dtype, keys.dtype)
        return "triton" if queries.is_cuda and not wide else "torch"
    return backend


def _triton_tiles(block_size: int | tuple[int, int] | None) -> dict[str, int]:
    if block_size is None:
        return {}
    block_m, block_n = (block_size, block_size) if isinstance(block_size, int) else block_size
    return {"block_m": block_m, "block_n": block_n}


@torch.no_grad()
def max_cosine_similarity(
    queries: Tensor,
    keys: Tensor,
    *,
    exact: bool = False,
    block_size: int | tuple[int, int] | None = None,
    backend: str = "auto",
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
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    Returns:
        ``(max_cos [m1], argmax [m1] int64)``.
    """
    validate_queries_and_keys(queries, keys)
    if _resolve_backend(backend, queries, keys) == "torch":
        return max_cosine_blocked.max_cosine_similarity(queries, keys, block_size=block_size)
    # Imported on first use: Triton fixes interpreted-vs-compiled when the kernel is decorated.
    from sae_fast.kernels import max_cosine_triton

    precision = max_cosine_triton.default_precision(queries, keys, exact)
    return max_cosine_triton.max_cosine_similarity(
        queries, keys, precision=precision, **_triton_tiles(block_size)
    )


@torch.no_grad()
def top_n_cosine_neighbours(
    queries: Tensor, keys: Tensor, n: int, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """The ``n`` most similar keys of every query: ``(values [m1, n], indices [m1, n])``, descending.

    Ties go to the lower key index. ``n`` must be between 1 and ``m0``. Blocked path only.
    """
    validate_queries_and_keys(queries, keys)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= keys.shape[0]:
        raise ValueError(f"n must be an int in [1, {keys.shape[0]}] (the number of keys), got {n!r}")
    return max_cosine_blocked.top_n_cosine_neighbours(queries, keys, n, block_size=block_size)


@torch.no_grad()
def cosine_pairs_above(
    queries: Tensor, keys: Tensor, tau: float, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Every pair with ``cos >= tau`` as ``(query_idx, key_idx, cos)``, sorted by query then key.

    Built tile by tile, so memory is proportional to the number of pairs found, not ``m1 * m0``.
    Blocked path only.
    """
    validate_queries_and_keys(queries, keys)
    if not -1.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be a cosine in [-1, 1], got {tau}")
    return max_cosine_blocked.cosine_pairs_above(queries, keys, float(tau), block_size=block_size)
