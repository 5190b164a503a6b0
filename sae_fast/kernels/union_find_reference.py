"""Connected components by union-find in plain Python: the specification of the C++ op.

Every node is labelled by the smallest node index in its component, so the labels are canonical:
they do not depend on edge order, and every backend's result compares element by element.
"""

from __future__ import annotations

import torch
from torch import Tensor


def connected_components(n_nodes: int, u: Tensor, v: Tensor) -> Tensor:
    """int64 ``[n_nodes]`` labels (union by size, path halving); inputs already checked."""
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
    # Scanning nodes in ascending order, the first member seen of each component is its smallest.
    smallest: dict[int, int] = {}
    labels = [smallest.setdefault(find(i), i) for i in range(n_nodes)]
    return torch.tensor(labels, dtype=torch.int64, device=u.device)
