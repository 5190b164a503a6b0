"""The interpolation path of Fig. 5: from the small SAE, add novel latents one at a time, then swap
reconstruction groups one at a time, recording MSE and L0 after every step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.stitching.classify import classify_latents
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.stitching.encoded import EncodedEvalSet, encode_eval_set
from sae_fast.stitching.groups import SwapGroups, find_swap_groups
from sae_fast.stitching.incremental import IncrementalStitchedError, single_threaded


@dataclass
class InterpolationPath:
    """One row per step (step 0 is the small SAE).

    ``phase[i]`` is ``"start"``, ``"add_novel"``, ``"swap_group"`` or ``"remove_unmatched"``;
    ``item[i]`` the novel latent (large-SAE index), group index or removed small latent.
    """

    phase: list[str] = field(default_factory=list)
    item: list[int] = field(default_factory=list)
    n_features: list[int] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    small_mse: float = float("nan")
    large_mse: float = float("nan")
    small_l0: float = float("nan")
    large_l0: float = float("nan")
    n_novel: int = 0
    n_groups: int = 0

    def record(self, phase: str, item: int, state: IncrementalStitchedError) -> None:
        self.phase.append(phase)
        self.item.append(int(item))
        self.n_features.append(state.n_features)
        self.mse.append(state.mse())
        self.l0.append(state.l0())

    def step_deltas(self, phase: str) -> tuple[Tensor, Tensor]:
        """Per-step changes ``(d_mse, d_l0)`` of the steps of one phase (Fig. 17-style analyses)."""
        mse, l0 = torch.tensor(self.mse, dtype=torch.float64), torch.tensor(self.l0, dtype=torch.float64)
        steps = torch.tensor([i for i, p in enumerate(self.phase) if p == phase], dtype=torch.int64)
        return mse[steps] - mse[steps - 1], l0[steps] - l0[steps - 1]


def _ordered(indices: Tensor, order: str, seed: int, key: Tensor | None = None) -> Tensor:
    if order == "random":
        g = torch.Generator().manual_seed(seed)
        return indices[torch.randperm(indices.numel(), generator=g).to(indices.device)]
    if order == "max_cos" and key is not None:
        return indices[torch.sort(key[indices], stable=True).indices]
    return indices


@torch.no_grad()
def interpolation_path(
    small: nn.Module,
    large: nn.Module,
    x: Tensor | EncodedEvalSet,
    config: StitchingConfig | float | None = None,
    *,
    groups: SwapGroups | None = None,
    **fields: Any,
) -> InterpolationPath:
    """Walk from ``small`` to (nearly) ``large`` over the evaluation tokens ``x``.

    Both SAEs encode ``x`` once; each step then updates the reconstruction by the rank-1
    contributions of the latents it adds or removes (see :mod:`.incremental`). ``config`` (a bare
    number is its threshold) orders the walk; ``fields`` replace its fields.
    """
    config = as_stitching_config(config, **fields)
    encoded = x if isinstance(x, EncodedEvalSet) else encode_eval_set(small, large, x, config)
    if groups is None:
        groups = find_swap_groups(small, large, config)
    state = IncrementalStitchedError(encoded, small.W_dec, small.b_dec, large.W_dec, large.b_dec)
    path = InterpolationPath(n_novel=groups.novel.numel(), n_groups=len(groups.groups))
    path.small_mse, path.small_l0 = state.mse(), state.l0()
    path.record("start", -1, state)

    max_cos = None
    if config.novel_order == "max_cos":
        max_cos = classify_latents(small, large, config).max_cos
    with single_threaded():
        _walk(state, path, groups, config, max_cos)

    # The large SAE's own point, for reference (same evaluation tokens and MSE convention).
    full = IncrementalStitchedError(encoded, small.W_dec, small.b_dec, large.W_dec, large.b_dec)
    full.change(1, torch.arange(large.W_dec.shape[0]), add=True)
    full.change(0, torch.arange(small.W_dec.shape[0]), add=False)
    path.large_mse, path.large_l0 = full.mse(), full.l0()
    return path


def _walk(state: IncrementalStitchedError, path: InterpolationPath, groups: SwapGroups,
          config: StitchingConfig, max_cos: Tensor | None) -> None:
    for latent in _ordered(groups.novel, config.novel_order, config.seed, max_cos).tolist():
        state.change(1, torch.tensor([latent]), add=True)
        path.record("add_novel", latent, state)

    group_ids = _ordered(torch.arange(len(groups.groups)), config.group_order, config.seed + 1)
    for gi in group_ids.tolist():
        group = groups.groups[gi]
        state.change(1, group.large, add=True)
        state.change(0, group.small, add=False)
        path.record("swap_group", gi, state)

    if config.remove_unmatched_small:
        for latent in groups.unmatched_small.tolist():
            state.change(0, torch.tensor([latent]), add=False)
            path.record("remove_unmatched", latent, state)

