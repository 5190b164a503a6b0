"""Which implementation of the eight kernel ops a tensor's device gets.

Every backend exposes the same functions with the signatures of the plain-torch references
(``batch_topk_select``, ``topk_select``, ``subset_topk_select``, ``threshold_select``, ``sparse_decode``,
``nested_sparse_decode``, ``sparse_row_dots``, ``sparse_transpose_matmul``), so the autograd Functions never
branch on it.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch

from sae_fast.kernels import select_reference, sparse_decode_reference

BACKENDS = ("auto", "dense", "torch", "cpp", "triton")
"""``dense``: the peer-style dense path (the reference for values and gradients);
``torch``/``cpp``/``triton``: the sparse path on plain-torch, C++ or Triton ops;
``auto``: Triton on CUDA, C++ on CPU when the extension is built, otherwise plain torch."""

REFERENCE_OPS = SimpleNamespace(
    name="torch",
    batch_topk_select=select_reference.batch_topk_select,
    topk_select=select_reference.topk_select,
    subset_topk_select=select_reference.subset_topk_select,
    threshold_select=select_reference.threshold_select,
    sparse_decode=sparse_decode_reference.sparse_decode,
    nested_sparse_decode=sparse_decode_reference.nested_sparse_decode,
    sparse_row_dots=sparse_decode_reference.sparse_row_dots,
    sparse_transpose_matmul=sparse_decode_reference.sparse_transpose_matmul,
)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def _cpp_ops():
    try:
        from sae_fast.kernels import cpu
    except ImportError:
        return None
    return cpu if cpu.is_available() else None


def _triton_ops():
    try:
        from sae_fast.kernels.triton_backend import TRITON_OPS
    except ImportError:
        return None
    return TRITON_OPS if TRITON_OPS.is_available() else None


def kernel_ops(device: torch.device, backend: str, dtype: torch.dtype = torch.float32):
    """The op namespace for ``device`` and parameter ``dtype`` under ``backend``.

    ``auto`` keeps float64 on the plain-torch ops: the compiled kernels accumulate in float32,
    and a user who asked for float64 asked for its precision.
    """
    check_backend(backend)
    if backend == "auto" and dtype == torch.float64:
        return REFERENCE_OPS
    if backend == "torch":
        return REFERENCE_OPS
    if backend == "cpp":
        ops = _cpp_ops()
        if ops is None or device.type != "cpu":
            raise ValueError(
                "backend='cpp' needs CPU tensors and the built extension sae_fast._C "
                "(run `pip install -e .` / `make test` to build it)"
            )
        return ops
    if backend == "triton":
        ops = _triton_ops()
        if ops is None or (device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1"):
            raise ValueError(
                "backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU testing) and triton"
            )
        return ops
    if device.type == "cuda":
        return _triton_ops() or REFERENCE_OPS
    if device.type == "cpu":
        return _cpp_ops() or REFERENCE_OPS
    return REFERENCE_OPS
