"""Which language model a command's ``--model`` names."""

from __future__ import annotations

import sys
from typing import Any

TINY_MODEL = "tiny-random"
"""The randomly initialised test model (no download)."""


def load_model_by_name(name: str, device: str) -> Any:
    """The bridge for ``name``; ``tiny-random`` is the randomly initialised test model."""
    import torch

    from sae_fast.activations import load_model, tiny_random_model

    if name == TINY_MODEL:
        from sae_fast.activations.models import set_model_source

        return set_model_source(tiny_random_model(device=device), TINY_MODEL)
    print(f"loading model {name} on {device} (SmolLM2 takes ~20-25 s on a CPU) ...", file=sys.stderr, flush=True)
    return load_model(name, device, torch.float32)
