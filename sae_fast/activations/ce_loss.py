"""Next-token cross-entropy of a model, clean or with one activation replaced (CE degradation).

CE degradation compares ``ce_loss_with_replacement(model, tokens, hook, sae)`` with the clean loss and
with ablations (``zero_ablation``, ``mean_ablation(mean)``); e.g. the fraction of loss recovered is
``(L_zero - L_sae) / (L_zero - L_clean)``.

When the SAE never saw position 0 (``first_position=1``, the default), position 0 keeps its clean
activation, and the loss is averaged only over predictions made *from* replaced positions
(``logits[:, first_position:-1]`` against ``tokens[:, first_position + 1:]``): the prediction made at
position 0 is identical in every variant and would only dilute the differences. The clean loss uses
the same positions so all variants are comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sae_fast.activations.hooks import check_tokens, run_with_replacement


def next_token_loss(logits: Tensor, tokens: Tensor, *, first_position: int = 0) -> Tensor:
    """Mean cross-entropy of ``logits[:, t]`` predicting ``tokens[:, t + 1]`` for ``t >= first_position``."""
    if logits.dim() != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be [batch, seq, vocab] matching tokens {tuple(tokens.shape)}")
    if tokens.shape[1] < first_position + 2:
        raise ValueError(
            f"sequences of length {tokens.shape[1]} have no next-token prediction from position {first_position} on"
        )
    predictions = logits[:, first_position:-1].float()
    targets = tokens[:, first_position + 1 :].to(predictions.device)
    return F.cross_entropy(predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1))


def clean_loss(model: Any, tokens: Tensor, *, first_position: int = 1) -> Tensor:
    """The model's own next-token loss on ``tokens`` (same positions as :func:`ce_loss_with_replacement`)."""
    tokens = check_tokens(tokens)
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(tokens.to(device), return_type="logits")
    return next_token_loss(logits, tokens, first_position=first_position)


def ce_loss_with_replacement(
    model: Any,
    tokens: Tensor,
    hook_name: str,
    replace_fn: Callable[[Tensor], Tensor],
    *,
    first_position: int = 1,
) -> Tensor:
    """Next-token loss with the activation at ``hook_name`` replaced by ``replace_fn(acts)`` (no grad).

    ``replace_fn`` receives ``acts[:, first_position:]`` (``[batch, seq - first_position, d]``) and
    returns a tensor of the same shape, e.g. an SAE: ``lambda a: sae(a.reshape(-1, d)).reshape(a.shape)``.
    Use ``first_position=0`` for SAEs trained on every position.
    """
    with torch.no_grad():
        logits = run_with_replacement(model, tokens, hook_name, replace_fn, first_position=first_position)
    return next_token_loss(logits, tokens, first_position=first_position)


def zero_ablation(acts: Tensor) -> Tensor:
    """Replacement function that sets the activation to zero."""
    return torch.zeros_like(acts)


def mean_ablation(mean: Tensor) -> Callable[[Tensor], Tensor]:
    """Replacement function that sets every position's activation to ``mean`` ``[d]`` (e.g. a cache mean)."""
    if not isinstance(mean, Tensor) or mean.dim() != 1:
        raise TypeError(f"mean must be a 1-D tensor [d_model], got {type(mean).__name__}")

    def replace(acts: Tensor) -> Tensor:
        if acts.shape[-1] != mean.shape[0]:
            raise ValueError(f"mean has width {mean.shape[0]} but the activations have width {acts.shape[-1]}")
        return mean.to(device=acts.device, dtype=acts.dtype).expand_as(acts)

    return replace
