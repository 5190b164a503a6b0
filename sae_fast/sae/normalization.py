"""Input normalisation inside the SAE, with SAELens's names and semantics (``normalize_activations``).

- ``"none"``: the SAE sees the activations as they are.
- ``"expected_average_only_in"``: one scalar ``s``, estimated from data so that ``E||s·x|| = sqrt(d_in)``;
  the SAE sees ``s·x`` and its reconstruction is divided by ``s``. SAELens folds ``s`` into the
  weights when it saves such an SAE, and so do we (see :mod:`sae_fast.io.saelens`).
- ``"layer_norm"``: per token, ``(x - mean) / (std + 1e-5)`` over ``d_in``, with the unbiased std,
  exactly the paper reference code's ``input_unit_norm`` and SAELens's run-time layer norm. The
  reconstruction is mapped back with ``x_hat · std + mean`` (no epsilon on the way out, as both do).

Without it, SmolLM2's attention-sink tokens (norms ~100x the median) hold almost all of the variance,
and an SAE trained on raw activations spends its latents on them. Losses are computed in the
normalised space, as the reference code does; :meth:`InputNormalization.restore` maps outputs back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

NORMALIZATIONS = ("none", "expected_average_only_in", "layer_norm")
LAYER_NORM_EPS = 1e-5


def check_normalization(mode: object) -> str:
    if mode is None or mode is False:
        return "none"
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize_activations must be one of {list(NORMALIZATIONS)}, got {mode!r}")
    return str(mode)


@dataclass(frozen=True)
class InputNormalization:
    """How one batch of tokens was normalised: a reconstruction maps back as ``x_hat · scale + shift``."""

    shift: Tensor | None  # [n, 1] per-token mean (layer_norm), or None
    scale: Tensor | float  # [n, 1] per-token std (layer_norm), or a scalar

    def restore(self, x_hat: Tensor) -> Tensor:
        """Map a reconstruction in the normalised space back to the input space."""
        out = x_hat if isinstance(self.scale, float) and self.scale == 1.0 else x_hat * self.scale
        return out if self.shift is None else out + self.shift


IDENTITY = InputNormalization(None, 1.0)


def normalize_tokens(x_tokens: Tensor, mode: str, activation_scale: float = 1.0) -> tuple[Tensor, InputNormalization]:
    """``(normalised tokens, how to map back)`` for ``x_tokens`` ``[n, d_in]``."""
    if mode == "none":
        return x_tokens, IDENTITY
    if mode == "expected_average_only_in":
        return x_tokens * activation_scale, InputNormalization(None, 1.0 / activation_scale)
    mean = x_tokens.mean(dim=-1, keepdim=True)
    centred = x_tokens - mean
    std = centred.std(dim=-1, keepdim=True)
    return centred / (std + LAYER_NORM_EPS), InputNormalization(mean, std)


def expected_average_scale(mean_norm: float, d_in: int) -> float:
    """The scalar that makes the average token norm ``sqrt(d_in)`` (SAELens's estimate)."""
    if not math.isfinite(mean_norm) or mean_norm <= 0:
        raise ValueError(
            f"cannot estimate the expected_average_only_in scale: the mean token norm is {mean_norm}; "
            "the activations are all zero or not finite"
        )
    return math.sqrt(d_in) / mean_norm
