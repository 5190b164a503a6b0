"""Plain-torch sparse products: the specification for the fused decode kernels and their backward.

Forward: ``x_hat[i] = b_dec + sum_{j in row i} values[j] * W_dec[latent_indices[j]]``.

The backward of that decode, and the backward of an encoder whose output was kept only at the
selected entries, need just two more products, so every backend implements exactly these three:

- :func:`sparse_decode`            ``out[i] = sum_{j in row i} values[j] * W[latent(j)]``
- :func:`sparse_row_dots`          ``out[j] = <A[token(j)], W[latent(j)]>``
- :func:`sparse_transpose_matmul`  ``out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)]``

(gradient of decode w.r.t. values is ``sparse_row_dots(grad_out, W_dec)``, w.r.t. ``W_dec`` it is
``sparse_transpose_matmul(values, grad_out)``; the encoder's are the same two products with
``W_enc.T`` and the centred input.)

Matryoshka SAEs add one op, :func:`nested_sparse_decode`: the reconstruction of every prefix of
the dictionary from one pass over the codes. Its backward needs no new product: with
:func:`split_rows_by_level` the codes become rows of (token, level), and the gradients are
:func:`sparse_row_dots` and :func:`sparse_transpose_matmul` against the per-level gradients summed
from each level to the last (a latent of level l is in every prefix from l on).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sae_fast.sparse_codes import SparseCodes


def sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None = None) -> Tensor:
    """Decode sparse codes with decoder ``W_dec`` ``[d_sae, d]``; returns ``[n, d]``.

    Differentiable w.r.t. ``codes.values``, ``W_dec`` and ``b_dec`` (autograd gives the reference
    gradients the fused backward must reproduce).
    """
    contributions = codes.values.unsqueeze(1).to(W_dec.dtype) * W_dec[codes.latent_indices]
    out = W_dec.new_zeros(codes.n_tokens, W_dec.shape[1]).index_add(
        0, codes.token_indices(), contributions
    )
    return out if b_dec is None else out + b_dec


def sparse_row_dots(codes: SparseCodes, A: Tensor, W: Tensor) -> Tensor:
    """``out[j] = <A[token(j)], W[latent(j)]>`` for every kept entry; ``A`` ``[n, d]``, ``W`` ``[d_sae, d]``."""
    return (A[codes.token_indices()] * W[codes.latent_indices]).sum(dim=1)


def sparse_transpose_matmul(codes: SparseCodes, A: Tensor, transposed: bool = False) -> Tensor:
    """``out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)]``; ``A`` ``[n, d]``, out ``[d_sae, d]``.

    ``transposed=True`` returns the contiguous ``[d, d_sae]`` transpose instead (the layout of ``W_enc``).
    """
    contributions = codes.values.unsqueeze(1).to(A.dtype) * A[codes.token_indices()]
    out = A.new_zeros(codes.d_sae, A.shape[1]).index_add(0, codes.latent_indices, contributions)
    return out.t().contiguous() if transposed else out


# ------------------------------------------------------------------ nested (Matryoshka) decode
def check_level_widths(widths: Tensor, d_sae: int) -> Tensor:
    """``widths`` as the int64 tensor the nested ops expect: strictly increasing, positive, last == ``d_sae``."""
    if not isinstance(widths, Tensor) or widths.dim() != 1 or widths.dtype != torch.int64 or widths.numel() == 0:
        raise ValueError(
            "widths must be a non-empty 1-D int64 tensor of prefix widths, e.g. torch.tensor([m // 4, m // 2, m])"
        )
    values = widths.tolist()
    if values[0] <= 0 or any(b <= a for a, b in zip(values, values[1:])) or values[-1] != d_sae:
        raise ValueError(f"widths must be positive, strictly increasing and end at d_sae={d_sae}, got {values}")
    return widths


def nested_sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None, widths: Tensor) -> Tensor:
    """``out[l, i] = b_dec + sum_{j in row i, latent(j) < widths[l]} values[j] * W_dec[latent(j)]``, ``[L, n, d]``.

    Every prefix of the dictionary decoded on its own: the obvious masked decode, once per level.
    Differentiable like :func:`sparse_decode` (autograd gives the gradients the fused backward must reproduce).
    """
    check_level_widths(widths, codes.d_sae)
    levels = []
    for width in widths.tolist():
        inside = (codes.latent_indices < width).to(codes.values.dtype)
        levels.append(sparse_decode(codes.with_values(codes.values * inside), W_dec, b_dec))
    return torch.stack(levels)


def split_rows_by_level(codes: SparseCodes, widths: Tensor) -> SparseCodes:
    """The same entries as ``codes`` over ``n * L`` rows: row ``i * L + l`` holds token i's latents of level l.

    Level l is ``[widths[l - 1], widths[l])``. Latents ascend within a row, so each (token, level)
    slice is already contiguous and only the offsets change: the nested decode's backward then
    runs the ordinary sparse products against a ``[n * L, d]`` matrix of per-level gradients.
    """
    n_levels = widths.numel()
    levels = torch.bucketize(codes.latent_indices, widths.to(codes.latent_indices.device), right=True)
    rows = codes.token_indices() * n_levels + levels
    counts = torch.bincount(rows, minlength=codes.n_tokens * n_levels)
    row_offsets = torch.zeros(codes.n_tokens * n_levels + 1, dtype=torch.int64, device=codes.row_offsets.device)
    torch.cumsum(counts, dim=0, out=row_offsets[1:])
    return SparseCodes(row_offsets, codes.latent_indices, codes.values, codes.d_sae)
