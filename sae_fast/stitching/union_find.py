"""Connected components by union-find: the C++ op from ``sae_fast._C`` when built, else Python.

Both label every node by the smallest node index in its component, so results are identical and
independent of edge order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sae_fast.validation import check_int

try:
    from sae_fast._C import connected_components as _cpp_connected_components
except ImportError:  # extension not built (or built before union_find.cpp existed)
    _cpp_connected_components = None


def connected_components_python(n_nodes: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pure-Python union-find (union by size, path halving); same labels as the C++ op."""
    parent = list(range(n_nodes))
    size = [1] * n_nodes

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(u.tolist(), v.tolist()):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
    smallest: dict[int, int] = {}
    labels = np.empty(n_nodes, dtype=np.int64)
    for i in range(n_nodes):
        labels[i] = smallest.setdefault(find(i), i)
    return labels


def connected_components(n_nodes: int, u: Tensor, v: Tensor, *, backend: str = "auto") -> Tensor:
    """Label each of ``n_nodes`` nodes by the smallest node of its component (int64 ``[n_nodes]``).

    Args:
        u, v: edge endpoints (1-D integer tensors of equal length, values in ``[0, n_nodes)``).
        backend: ``"auto"`` (C++ if built), ``"cpp"`` or ``"python"``.
    """
    check_int(n_nodes, "n_nodes", lower=0)
    for name, t in (("u", u), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.is_floating_point():
            raise TypeError(f"{name} must be a 1-D integer tensor of edge endpoints")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same length, got {u.numel()} and {v.numel()}")
    if u.numel() and (min(int(u.min()), int(v.min())) < 0 or max(int(u.max()), int(v.max())) >= n_nodes):
        raise ValueError(f"edge endpoints must lie in [0, {n_nodes})")
    if backend not in ("auto", "cpp", "python"):
        raise ValueError(f"backend must be 'auto', 'cpp' or 'python', got {backend!r}")
    if backend == "cpp" and _cpp_connected_components is None:
        raise RuntimeError("sae_fast._C has no connected_components; build the extension (pip install -e .)")
    u_np = u.detach().to("cpu", torch.int64).contiguous().numpy()
    v_np = v.detach().to("cpu", torch.int64).contiguous().numpy()
    if backend == "python" or _cpp_connected_components is None:
        labels = connected_components_python(n_nodes, u_np, v_np)
    else:
        labels = _cpp_connected_components(n_nodes, u_np, v_np)
    return torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(u.device)


def cpp_available() -> bool:
    return _cpp_connected_components is not None
