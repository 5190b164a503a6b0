"""Which backend's :class:`~sae_fast.kernels.ops.KernelOps` a tensor's device gets."""

from __future__ import annotations

import torch

from sae_fast.kernels import encode_select_reference, select_reference, sparse_decode_reference
from sae_fast.kernels.ops import KernelOps
from sae_fast.kernels.triton_interpreter import interpreting

BACKENDS = ("auto", "torch", "cpp", "triton")
"""``torch``/``cpp``/``triton``: the plain-torch specs, the C++ ops or the Triton kernels;
``auto``: Triton on CUDA, C++ on CPU when the extension is built, otherwise plain torch."""

REFERENCE_OPS = KernelOps.collect("torch", select_reference, sparse_decode_reference, encode_select_reference)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        hint = " (the dense training path is now the SAE flag dense_training=True)" if backend == "dense" else ""
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}{hint}")
    return backend


def _cpp_ops() -> KernelOps | None:
    from sae_fast.kernels.cpu_backend import CPP_OPS

    return CPP_OPS


def _triton_ops() -> KernelOps | None:
    from sae_fast.kernels.triton_backend import TRITON_OPS, is_available

    return TRITON_OPS if is_available() else None


def kernel_ops(device: torch.device, backend: str, dtype: torch.dtype = torch.float32) -> KernelOps:
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
        if ops is None or (device.type != "cuda" and not interpreting()):
            raise ValueError(
                "backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU testing) and triton "
                "(pip install 'sae-fast[gpu]')"
            )
        return ops
    if device.type == "cuda":
        return _triton_ops() or REFERENCE_OPS
    if device.type == "cpu":
        return _cpp_ops() or REFERENCE_OPS
    return REFERENCE_OPS
