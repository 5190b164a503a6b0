"""Run code with a module in eval mode and give it back in the mode it was in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(sae):`` selects as at inference (BatchTopK with its threshold theta) and
    leaves training's counters alone; the caller's train/eval mode is restored even on error."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"eval_mode needs a torch.nn.Module (e.g. an SAE), got {type(module).__name__}")
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
