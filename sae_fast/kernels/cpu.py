"""CPU backend of the selection ops and sparse products: thin torch wrappers over ``sae_fast._C``.

Same signatures and results as :mod:`~sae_fast.kernels.select_reference` and
:mod:`~sae_fast.kernels.sparse_decode_reference`, computed by OpenMP C++ in O(n * d_sae) for
selection (no sort) and O(nnz * d) for the products (no dense ``[n, d_sae]`` matrix).

Tensors reach C++ as zero-copy numpy views when they are contiguous CPU float32 (values) and
int64 (indices); other floating dtypes are computed in float32 and cast back, which is exact for
bfloat16 and float16 selection because their upcast to float32 is exact. These functions do not
record autograd history: the autograd Functions in the module layer call them.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
from torch import Tensor

from sae_fast.kernels.select_reference import check_latent_subset
from sae_fast.openmp_policy import warn_if_spinning
from sae_fast.sparse_codes import SparseCodes

try:
    from sae_fast import _C
except ImportError as _error:  # the extension is optional at import time; calls explain how to build it
    _C = None
    _IMPORT_ERROR: ImportError | None = _error
else:
    _IMPORT_ERROR = None


def is_available() -> bool:
    """Whether the compiled extension ``sae_fast._C`` imported."""
    return _C is not None


def _extension():
    if _C is None:
        raise RuntimeError(
            "the C++ extension sae_fast._C is not built "
            f"({_IMPORT_ERROR}); run `bash scripts/ensure_venv.sh` or "
            "`pip install --no-build-isolation -e .` from the repository root"
        )
    # OpenMP's thread count is per calling thread: follow torch.set_num_threads on every call.
    threads = torch.get_num_threads()
    _C.set_num_threads(threads)
    warn_if_spinning(threads)
    return _C


def _check_tensor(t: object, name: str, dims: int) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}; the CPU kernels need CPU tensors (call .cpu())")
    if t.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D, got shape {tuple(t.shape)}")
    return t


def _floats(t: object, name: str, dims: int) -> np.ndarray:
    """A float32 C-contiguous numpy view of ``t`` (a copy only if ``t`` is not already one)."""
    t = _check_tensor(t, name, dims)
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {t.dtype}")
    return t.detach().to(torch.float32).contiguous().numpy()


def _indices(t: object, name: str) -> np.ndarray:
    t = _check_tensor(t, name, 1)
    if t.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {t.dtype} (use .long())")
    return t.detach().contiguous().numpy()


def _budget(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        budget = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if budget < 0:
        raise ValueError(f"{name} must be >= 0, got {budget}")
    return budget


def _codes_from(pre: Tensor, triple: tuple[np.ndarray, np.ndarray, np.ndarray]) -> SparseCodes:
    row_offsets, latent_indices, values = (torch.from_numpy(a) for a in triple)
    codes = SparseCodes(row_offsets, latent_indices, values, pre.shape[1])
    if pre.dtype != torch.float32:
        # Gather from pre itself so values are bit-exact in its dtype (and on the reference's pattern).
        codes = codes.with_values(pre.detach()[codes.token_indices(), latent_indices])
    return codes


def batch_topk_select(pre: Tensor, k_total: int) -> SparseCodes:
    """Keep the ``k_total`` (= n * k) largest positive entries across the whole ``[n, d_sae]`` batch."""
    k_total = _budget(k_total, "k_total")
    x = _floats(pre, "pre", 2)
    return _codes_from(pre, _extension().batch_topk_select(x, k_total))


def topk_select(pre: Tensor, k: int) -> SparseCodes:
    """Keep the ``k`` largest positive entries of every row of ``pre`` ``[n, d_sae]``."""
    k = _budget(k, "k")
    x = _floats(pre, "pre", 2)
    return _codes_from(pre, _extension().topk_select(x, k))


def subset_topk_select(pre: Tensor, latents: Tensor, k: int) -> SparseCodes:
    """Per row, keep the ``k`` largest positive entries among the columns ``latents`` (ascending int64).

    Reads only those columns, in place: no masked copy of ``pre`` and no pass over the others.
    """
    k = _budget(k, "k")
    x = _floats(pre, "pre", 2)
    latents = check_latent_subset(_check_tensor(latents, "latents", 1), pre.shape[1], pre.device)
    return _codes_from(pre, _extension().topk_select(x, k, _indices(latents, "latents")))


def threshold_select(pre: Tensor, threshold: Tensor | float) -> SparseCodes:
    """JumpReLU selection: keep entries strictly above ``threshold`` (a scalar or one per latent)."""
    x = _floats(pre, "pre", 2)
    if isinstance(threshold, Tensor) and threshold.device.type != "cpu":
        raise ValueError(f"threshold is on {threshold.device}; pass a CPU tensor or a float")
    # Round the threshold to pre's dtype first, as the reference compares in that dtype.
    thr = torch.as_tensor(threshold, dtype=pre.dtype).detach()
    if thr.numel() != 1 and thr.shape != (pre.shape[1],):
        raise ValueError(
            f"threshold must be a scalar or have shape ({pre.shape[1]},) (one per latent), "
            f"got shape {tuple(thr.shape)}"
        )
    thr32 = thr.reshape(-1).to(torch.float32).contiguous().numpy()
    return _codes_from(pre, _extension().threshold_select(x, thr32))


def _check_codes(codes: object) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(codes, SparseCodes):
        raise TypeError(f"codes must be SparseCodes, got {type(codes).__name__}")
    row_offsets = _indices(codes.row_offsets, "codes.row_offsets")
    latent_indices = _indices(codes.latent_indices, "codes.latent_indices")
    return row_offsets, latent_indices


def _check_dictionary(W: object, name: str, codes: SparseCodes) -> np.ndarray:
    w = _floats(W, name, 2)
    if w.shape[0] != codes.d_sae:
        raise ValueError(f"{name} must have d_sae = {codes.d_sae} rows, got shape {tuple(w.shape)}")
    return w


def _check_token_matrix(A: object, codes: SparseCodes) -> np.ndarray:
    a = _floats(A, "A", 2)
    if a.shape[0] != codes.n_tokens:
        raise ValueError(f"A must have one row per token ({codes.n_tokens}), got shape {tuple(a.shape)}")
    return a


def sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None = None) -> Tensor:
    """``out[i] = b_dec + sum_{j in row i} values[j] * W_dec[latent(j)]``; ``W_dec`` ``[d_sae, d]``."""
    row_offsets, latent_indices = _check_codes(codes)
    w = _check_dictionary(W_dec, "W_dec", codes)
    values = _floats(codes.values, "codes.values", 1)
    bias = None
    out_dtype = W_dec.dtype
    if b_dec is not None:
        bias = _floats(b_dec, "b_dec", 1)
        if bias.shape[0] != w.shape[1]:
            raise ValueError(f"b_dec must have shape ({w.shape[1]},), got {tuple(b_dec.shape)}")
        out_dtype = torch.result_type(W_dec, b_dec)
    out = _extension().sparse_decode(row_offsets, latent_indices, values, w, bias)
    return torch.from_numpy(out).to(out_dtype)


def nested_sparse_decode(codes: SparseCodes, W_dec: Tensor, b_dec: Tensor | None, widths: Tensor) -> Tensor:
    """``out[l, i] = b_dec + sum_{j in row i, latent(j) < widths[l]} values[j] * W_dec[latent(j)]``, ``[L, n, d]``."""
    row_offsets, latent_indices = _check_codes(codes)
    w = _check_dictionary(W_dec, "W_dec", codes)
    values = _floats(codes.values, "codes.values", 1)
    ends = _indices(widths, "widths")
    bias = None
    out_dtype = W_dec.dtype
    if b_dec is not None:
        bias = _floats(b_dec, "b_dec", 1)
        out_dtype = torch.result_type(W_dec, b_dec)
    out = _extension().nested_sparse_decode(row_offsets, latent_indices, values, w, bias, ends)
    return torch.from_numpy(out).to(out_dtype)


def sparse_row_dots(codes: SparseCodes, A: Tensor, W: Tensor) -> Tensor:
    """``out[j] = <A[token(j)], W[latent(j)]>`` for every kept entry; ``A`` ``[n, d]``, ``W`` ``[d_sae, d]``."""
    row_offsets, latent_indices = _check_codes(codes)
    a = _check_token_matrix(A, codes)
    w = _check_dictionary(W, "W", codes)
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"A and W must have the same width, got {tuple(A.shape)} and {tuple(W.shape)}")
    out = _extension().sparse_row_dots(row_offsets, latent_indices, a, w)
    return torch.from_numpy(out).to(torch.result_type(A, W))


def sparse_transpose_matmul(codes: SparseCodes, A: Tensor, transposed: bool = False) -> Tensor:
    """``out[l] = sum_{j : latent(j) = l} values[j] * A[token(j)]``; ``A`` ``[n, d]``, out ``[d_sae, d]``.

    ``transposed=True`` writes ``[d, d_sae]`` directly (no separate transposing pass).
    """
    row_offsets, latent_indices = _check_codes(codes)
    a = _check_token_matrix(A, codes)
    values = _floats(codes.values, "codes.values", 1)
    out = _extension().sparse_transpose_matmul(row_offsets, latent_indices, values, a, codes.d_sae, bool(transposed))
    return torch.from_numpy(out).to(A.dtype)
