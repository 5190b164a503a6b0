"""Connected components of an undirected graph: the dispatched union-find op.

Backends, in the SAE modules' vocabulary: ``"cpp"`` (:mod:`.union_find_cpu`) and ``"torch"``
(:mod:`.union_find_reference`, plain Python); ``"auto"`` takes C++ when the extension is built.
Union-find is a sequential pointer chase with no GPU kernel, so there is no ``"triton"``: edges
on any device are labelled on the CPU and the labels returned on the edges' device.
``"python"`` is accepted as the older name of ``"torch"``.
"""

from __future__ import annotations

from torch import Tensor

from sae_fast.kernels import union_find_cpu, union_find_reference

BACKENDS = ("auto", "torch", "cpp")
_OLDER_NAMES = {"python": "torch"}


def _check_edges(n_nodes: int, u: Tensor, v: Tensor) -> None:
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 0:
        raise ValueError(f"n_nodes must be a non-negative int, got {n_nodes!r}")
    for name, t in (("u", u), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must be a 1-D integer tensor of edge endpoints")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same length, got {u.numel()} and {v.numel()}")
    if u.numel() and (min(int(u.min()), int(v.min())) < 0 or max(int(u.max()), int(v.max())) >= n_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {n_nodes}); check the node numbering")


def _resolve_backend(backend: str) -> str:
    backend = _OLDER_NAMES.get(backend, backend)
    if backend == "triton":
        raise ValueError("union-find has no Triton kernel; use backend='auto', 'cpp' or 'torch'")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpp" and not union_find_cpu.is_available():
        raise ValueError(
            "backend='cpp' needs sae_fast._C built with union_find.cpp "
            "(`pip install --no-build-isolation -e .`); or use backend='auto' or 'torch'"
        )
    if backend == "auto":
        return "cpp" if union_find_cpu.is_available() else "torch"
    return backend


def connected_components(n_nodes: int, u: Tensor, v: Tensor, *, backend: str = "auto") -> Tensor:
    """Label each of ``n_nodes`` nodes by the smallest node of its component (int64 ``[n_nodes]``).

    Args:
        u, v: edge endpoints (1-D integer tensors of equal length, values in ``[0, n_nodes)``).
        backend: ``"auto"`` (C++ if built), ``"cpp"`` or ``"torch"``.
    """
    _check_edges(n_nodes, u, v)
    if _resolve_backend(backend) == "cpp":
        return union_find_cpu.connected_components(n_nodes, u, v)
    return union_find_reference.connected_components(n_nodes, u.cpu(), v.cpu()).to(u.device)
