"""Connected components by the C++ union-find in ``sae_fast._C`` (same labels as the reference).

Edge lists reach millions of pairs for large dictionaries, where the Python loop of
:mod:`.union_find_reference` is the bottleneck; the C++ op is one pass, near O(E).
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    from sae_fast._C import connected_components as _cpp_connected_components
except ImportError:  # extension not built, or built before union_find.cpp existed
    _cpp_connected_components = None


def is_available() -> bool:
    """Whether the built extension has the union-find op."""
    return _cpp_connected_components is not None


def connected_components(n_nodes: int, u: Tensor, v: Tensor) -> Tensor:
    """int64 ``[n_nodes]`` labels, each node's smallest component member; inputs already checked."""
    if _cpp_connected_components is None:
        raise RuntimeError(
            "sae_fast._C has no connected_components; rebuild the extension "
            "(`pip install --no-build-isolation -e .` from the repository root)"
        )
    # Zero-copy numpy views for contiguous CPU int64 endpoints; anything else is copied once.
    u_np = u.detach().to("cpu", torch.int64).contiguous().numpy()
    v_np = v.detach().to("cpu", torch.int64).contiguous().numpy()
    return torch.from_numpy(_cpp_connected_components(n_nodes, u_np, v_np)).to(u.device)
