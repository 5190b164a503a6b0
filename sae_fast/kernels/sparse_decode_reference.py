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
"""

from __future__ import annotations

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


def sparse_transpose_matmul(codes: SparseCodes, A: Tensor) -> Tensor:
    """``out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)]``; ``A`` ``[n, d]``, out ``[d_sae, d]``."""
    contributions = codes.values.unsqueeze(1).to(A.dtype) * A[codes.token_indices()]
    return A.new_zeros(codes.d_sae, A.shape[1]).index_add(0, codes.latent_indices, contributions)
