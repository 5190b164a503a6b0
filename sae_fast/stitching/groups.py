"""Swappable groups: connected components of the bipartite max-cosine graph (paper section 4.2).

Nodes are the small SAE's latents and the large SAE's latents; an edge joins a pair whose decoder
cosine is ``>= threshold``. Every component that has an edge holds latents of both SAEs, and its
small-SAE latents can be swapped for its large-SAE latents as a unit. Large latents with no edge
are exactly the novel latents; small latents with no edge belong to no group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.kernels.union_find import connected_components
from sae_fast.similarity import cosine_pairs_above
from sae_fast.sae.decoder_rows import decoder_rows
from sae_fast.stitching.config import StitchingConfig, as_stitching_config


@dataclass(frozen=True)
class SwapGroup:
    small: Tensor  # int64, ascending latent indices of the small SAE
    large: Tensor  # int64, ascending latent indices of the large SAE


@dataclass(frozen=True)
class SwapGroups:
    """The bipartite graph and its components."""

    groups: list[SwapGroup]  # ordered by smallest small-SAE member
    edge_small: Tensor  # int64 [E]
    edge_large: Tensor  # int64 [E]
    edge_cos: Tensor  # [E]
    novel: Tensor  # int64, large latents with no edge
    unmatched_small: Tensor  # int64, small latents with no edge
    d_small: int
    d_large: int
    threshold: float

    def group_sizes(self) -> Tensor:
        """``[n_groups, 2]``: (small members, large members) per group."""
        return torch.tensor([[g.small.numel(), g.large.numel()] for g in self.groups], dtype=torch.int64)


def find_swap_groups(
    small: nn.Module | Tensor,
    large: nn.Module | Tensor,
    config: StitchingConfig | float | None = None,
    *,
    backend: str = "auto",
    **fields: Any,
) -> SwapGroups:
    """Build the bipartite graph (edges ``cos >= config.threshold``) and split it into swap groups.

    ``config`` gives the threshold (a bare number is the threshold) and ``block_size``; ``fields``
    replace config fields. ``backend`` selects the union-find implementation (``"auto"``, ``"cpp"``,
    ``"torch"``).
    """
    config = as_stitching_config(config, **fields)
    threshold = config.threshold
    W0, W1 = decoder_rows(small, "small"), decoder_rows(large, "large")
    m0, m1 = W0.shape[0], W1.shape[0]
    large_idx, small_idx, cos = cosine_pairs_above(W1, W0, threshold, block_size=config.block_size)
    # Node ids: small latents 0..m0-1, large latents m0..m0+m1-1.
    labels = connected_components(m0 + m1, small_idx.cpu(), (large_idx + m0).cpu(), backend=backend)
    has_edge = torch.zeros(m0 + m1, dtype=torch.bool)
    has_edge[small_idx.cpu()] = True
    has_edge[large_idx.cpu() + m0] = True
    nodes = has_edge.nonzero(as_tuple=True)[0]
    # Sorting edge-bearing nodes by (label, node) lays each component out contiguously; the label
    # is its smallest node, always a small latent, so groups come out ordered by that latent.
    order = torch.argsort(labels[nodes] * (m0 + m1) + nodes)
    nodes, node_labels = nodes[order], labels[nodes][order]
    _, counts = torch.unique_consecutive(node_labels, return_counts=True)
    groups = []
    for members in torch.split(nodes, counts.tolist()):
        groups.append(SwapGroup(small=members[members < m0], large=members[members >= m0] - m0))
    device = W0.device
    return SwapGroups(
        groups=[SwapGroup(g.small.to(device), g.large.to(device)) for g in groups],
        edge_small=small_idx,
        edge_large=large_idx,
        edge_cos=cos,
        novel=(~has_edge[m0:]).nonzero(as_tuple=True)[0].to(device),
        unmatched_small=(~has_edge[:m0]).nonzero(as_tuple=True)[0].to(device),
        d_small=m0,
        d_large=m1,
        threshold=float(threshold),
    )
