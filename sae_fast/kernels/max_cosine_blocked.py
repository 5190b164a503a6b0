"""Blocked cosine statistics in plain torch: the ``"torch"`` backend, the CPU path (correct on any device).

The ``[m1, m0]`` cosine matrix of two large dictionaries does not fit in memory (24,576 x 98,304
fp32 is 9.7 GB), yet every statistic we need is a reduction over keys. So both inputs are
normalised once and the product is formed one ``[query_block, key_block]`` tile at a time, into a
single reused buffer, folding each tile into a running result. Peak extra memory is the two
normalised copies plus one tile, independent of ``m1 * m0``.

Conventions (zero rows, ties) are those of :mod:`sae_fast.kernels.max_cosine_reference`: key
blocks are visited in ascending order and a later block only wins on a *strictly* larger value,
so ties keep the lowest key index.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from sae_fast.kernels.cosine_rows import normalize_rows

DEFAULT_BLOCK_SIZE = (2048, 4096)
"""(query rows, key rows) per tile: 32 MiB of fp32; large enough for BLAS efficiency, small next to the inputs."""


def _block_sizes(block_size: int | tuple[int, int] | None) -> tuple[int, int]:
    if block_size is None:
        return DEFAULT_BLOCK_SIZE
    bq, bk = (block_size, block_size) if isinstance(block_size, int) else block_size
    if bq < 1 or bk < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    return int(bq), int(bk)


def result_dtype(queries: Tensor, keys: Tensor) -> torch.dtype:
    """Cosines are computed in fp32, or fp64 when an input is fp64."""
    return torch.promote_types(torch.promote_types(queries.dtype, keys.dtype), torch.float32)


def _cosine_tiles(
    queries: Tensor, keys: Tensor, block_size: int | tuple[int, int] | None
) -> Iterator[tuple[int, int, Tensor]]:
    """Yield ``(query_start, key_start, tile)`` row-block-major; ``tile`` is a reused buffer."""
    bq, bk = _block_sizes(block_size)
    qn, kn = normalize_rows(queries), normalize_rows(keys)
    dtype = result_dtype(queries, keys)
    qn, kn = qn.to(dtype), kn.to(dtype)
    buffer = qn.new_empty(min(bq, max(qn.shape[0], 1)) * min(bk, kn.shape[0]))
    for q0 in range(0, qn.shape[0], bq):
        q_blk = qn[q0 : q0 + bq]
        for k0 in range(0, kn.shape[0], bk):
            k_blk = kn[k0 : k0 + bk]
            tile = buffer[: q_blk.shape[0] * k_blk.shape[0]].view(q_blk.shape[0], k_blk.shape[0])
            torch.mm(q_blk, k_blk.T, out=tile)
            yield q0, k0, tile


def max_cosine_similarity(
    queries: Tensor, keys: Tensor, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """``(max_cos [m1], argmax [m1] int64)`` of each query over all keys, one tile at a time."""
    m1 = queries.shape[0]
    best_val = torch.full((m1,), float("-inf"), dtype=result_dtype(queries, keys), device=queries.device)
    best_idx = torch.zeros(m1, dtype=torch.int64, device=queries.device)
    for q0, k0, tile in _cosine_tiles(queries, keys, block_size):
        val, idx = tile.max(dim=1)  # first maximal index within the tile = lowest key index
        rows = slice(q0, q0 + tile.shape[0])
        better = val > best_val[rows]
        best_val[rows] = torch.where(better, val, best_val[rows])
        best_idx[rows] = torch.where(better, idx + k0, best_idx[rows])
    return best_val, best_idx


def _tile_top_n(tile: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Top ``n`` of every tile row with the lowest-index tie rule.

    ``torch.topk`` is fast but picks arbitrarily among values tied at the cut-off, so rows where a
    tie straddles the cut-off (rare with real data) are redone with a stable full sort.
    """
    vals, idx = torch.topk(tile, n, dim=1)
    cutoff = vals[:, -1:]
    straddling = (tile == cutoff).sum(dim=1) > (vals == cutoff).sum(dim=1)
    if bool(straddling.any()):
        rows = straddling.nonzero(as_tuple=True)[0]
        exact = torch.sort(tile[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = exact.values[:, :n], exact.indices[:, :n]
    return vals, idx


def top_n_cosine_neighbours(
    queries: Tensor, keys: Tensor, n: int, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """The ``n`` most similar keys per query (descending ``[m1, n]`` values and int64 indices)."""
    m1 = queries.shape[0]
    best_val = torch.full((m1, n), float("-inf"), dtype=result_dtype(queries, keys), device=queries.device)
    best_idx = torch.zeros((m1, n), dtype=torch.int64, device=queries.device)
    for q0, k0, tile in _cosine_tiles(queries, keys, block_size):
        rows = slice(q0, q0 + tile.shape[0])
        tile_val, tile_idx = _tile_top_n(tile, min(n, tile.shape[1]))
        vals = torch.cat([best_val[rows], tile_val], dim=1)
        idxs = torch.cat([best_idx[rows], tile_idx + k0], dim=1)
        # Order candidates by (value descending, key index ascending): a stable sort by value
        # after a sort by index. Running entries sit first and have lower indices than the tile.
        by_index = torch.sort(idxs, dim=1, stable=True).indices
        vals, idxs = vals.gather(1, by_index), idxs.gather(1, by_index)
        order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :n]
        best_val[rows] = vals.gather(1, order)
        best_idx[rows] = idxs.gather(1, order)
    return best_val, best_idx


def cosine_pairs_above(
    queries: Tensor, keys: Tensor, tau: float, *, block_size: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """All ``(query_idx, key_idx, cos)`` with ``cos >= tau``, sorted by query then key index."""
    q_parts, k_parts, v_parts = [], [], []
    for q0, k0, tile in _cosine_tiles(queries, keys, block_size):
        qi, ki = (tile >= tau).nonzero(as_tuple=True)
        q_parts.append(qi + q0)
        k_parts.append(ki + k0)
        v_parts.append(tile[qi, ki])
    device = queries.device
    if not q_parts:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty.clone(), torch.zeros(0, dtype=result_dtype(queries, keys), device=device)
    q_idx, k_idx, cos = torch.cat(q_parts), torch.cat(k_parts), torch.cat(v_parts)
    order = torch.argsort(q_idx * keys.shape[0] + k_idx)
    return q_idx[order], k_idx[order], cos[order]
