"""Hook names, early-stopping activation capture and activation replacement on a ``TransformerBridge``.

Hook names follow TransformerLens: the residual stream entering block ``L`` is ``blocks.L.hook_resid_pre``,
after its attention ``blocks.L.hook_resid_mid``, leaving it ``blocks.L.hook_resid_post`` (equal to
``blocks.{L+1}.hook_resid_pre``). :func:`resid_hook_name` builds them; any name in ``model.hook_dict``
(e.g. ``blocks.L.hook_mlp_out``, ``blocks.L.attn.hook_z``) is accepted.

Capture runs the model only as deep as the hook: the capturing hook raises a private exception right
after storing the tensor, which unwinds the forward pass (``run_with_hooks`` removes its hooks in a
``finally``). That works on every bridge version and for every hook, including ones that are not
per-block; :func:`stop_at_layer_for_hook` gives the equivalent ``stop_at_layer`` for callers that prefer
``run_with_cache(..., stop_at_layer=...)`` where their TransformerLens version supports it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sae_fast.validation import check_int

_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.")
_RESID_SITES = ("pre", "mid", "post")


def resid_hook_name(layer: int, site: str = "post") -> str:
    """``blocks.{layer}.hook_resid_{site}`` with ``site`` in ``pre`` / ``mid`` / ``post``."""
    check_int(layer, "layer", lower=0)
    if site not in _RESID_SITES:
        raise ValueError(f"site must be one of {_RESID_SITES}, got {site!r}")
    return f"blocks.{layer}.hook_resid_{site}"


def hook_layer(hook_name: str) -> int | None:
    """The block index of a ``blocks.L.*`` hook, or None for hooks outside the blocks (embed, ln_final)."""
    match = _BLOCK_HOOK.match(hook_name)
    return int(match.group(1)) if match else None


def stop_at_layer_for_hook(hook_name: str) -> int | None:
    """``stop_at_layer`` that still runs the hook's block (``L + 1``), or None for non-block hooks."""
    layer = hook_layer(hook_name)
    return None if layer is None else layer + 1


def check_hook_name(model: Any, hook_name: object) -> str:
    """Return ``hook_name`` if the bridge has it, else raise ValueError listing close names."""
    if not isinstance(hook_name, str):
        raise TypeError(f"hook_name must be a str such as 'blocks.15.hook_resid_post', got {type(hook_name).__name__}")
    names = model.hook_dict.keys()
    if hook_name in names:
        return hook_name
    n_layers = getattr(getattr(model, "cfg", None), "n_layers", None)
    layer = hook_layer(hook_name)
    if layer is not None and isinstance(n_layers, int) and layer >= n_layers:
        raise ValueError(f"hook {hook_name!r} names block {layer}, but the model has blocks 0..{n_layers - 1}")
    close = difflib.get_close_matches(hook_name, list(names), n=5)
    raise ValueError(f"the model has no hook {hook_name!r}; close names: {close}")


class _CaptureDone(Exception):
    """Raised by the capturing hook to unwind the rest of the forward pass."""


def check_tokens(tokens: object) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype not in (torch.int32, torch.int64):
        raise TypeError(
            "tokens must be an int64 tensor [batch, seq] of token ids, got "
            f"{type(tokens).__name__}{'' if not isinstance(tokens, Tensor) else f' {tokens.dtype} {tuple(tokens.shape)}'}"
        )
    if tokens.numel() == 0:
        raise ValueError(f"tokens is empty (shape {tuple(tokens.shape)})")
    return tokens.long()


def capture_activations(model: Any, tokens: Tensor, hook_name: str) -> Tensor:
    """Activations ``[batch, seq, ...]`` at ``hook_name`` for ``tokens``; layers after the hook never run."""
    tokens = check_tokens(tokens)
    check_hook_name(model, hook_name)
    captured: list[Tensor] = []

    def capture(activation: Tensor, hook: Any) -> None:
        captured.append(activation.detach())
        raise _CaptureDone

    device = next(model.parameters()).device
    with torch.no_grad():
        try:
            model.run_with_hooks(tokens.to(device), fwd_hooks=[(hook_name, capture)], return_type=None)
        except _CaptureDone:
            pass
    if not captured:
        raise RuntimeError(
            f"hook {hook_name!r} did not fire during the forward pass; it may be gated (e.g. attention "
            "patterns need model.set_use_attn_result(True)) or not reached for this input"
        )
    return captured[0]


def run_with_replacement(
    model: Any,
    tokens: Tensor,
    hook_name: str,
    replace_fn: Callable[[Tensor], Tensor],
    *,
    first_position: int = 0,
) -> Tensor:
    """Logits ``[batch, seq, vocab]`` with the activation at ``hook_name`` replaced by ``replace_fn(acts)``.

    Only positions ``first_position:`` are replaced (``replace_fn`` sees ``acts[:, first_position:]``);
    earlier positions keep their clean value, which is what an SAE trained without those positions can
    be held to. The replacement is cast back to the activation's dtype and must keep its shape.
    """
    tokens = check_tokens(tokens)
    check_hook_name(model, hook_name)
    if not callable(replace_fn):
        raise TypeError(f"replace_fn must be callable (acts -> new acts), got {type(replace_fn).__name__}")
    check_int(first_position, "first_position", lower=0)
    if first_position >= tokens.shape[1]:
        raise ValueError(f"first_position={first_position} leaves nothing to replace in sequences of {tokens.shape[1]}")

    def replace(activation: Tensor, hook: Any) -> Tensor:
        kept = activation[:, first_position:]
        new = replace_fn(kept)
        if not isinstance(new, Tensor) or new.shape != kept.shape:
            raise ValueError(
                f"replace_fn must return a tensor of the input's shape {tuple(kept.shape)}, got "
                f"{tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__}"
            )
        if first_position == 0:
            return new.to(activation.dtype)
        return torch.cat([activation[:, :first_position], new.to(activation.dtype)], dim=1)

    device = next(model.parameters()).device
    return model.run_with_hooks(tokens.to(device), fwd_hooks=[(hook_name, replace)], return_type="logits")
