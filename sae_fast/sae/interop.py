"""An sae_fast SAE inside TransformerLens and SAELens: a hook function, and a real ``sae_lens.SAE``.

Two ways, for two kinds of user:

- :func:`transformer_lens_hook` (``sae.as_hook()``): a plain TransformerLens forward hook, for
  ``model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.hook_name, sae.as_hook())])``. It needs
  neither SAELens nor a conversion, and runs sae_fast's own kernels.
- :func:`to_saelens` (``sae.to_saelens()``): the same SAE as an ``sae_lens.SAE``, for code written
  against SAELens (``HookedSAETransformer.add_sae``, ``run_with_cache_with_saes``, SAE-Bench ...).
  It goes through sae_fast's save format, which SAELens 6 loads with identical outputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae_fast.sae.eval_mode import eval_mode

if TYPE_CHECKING:
    from sae_fast.sae.base import SparseAutoencoder


def _flatten_heads(activation: Tensor, d_in: int) -> Tensor:
    """``activation`` as ``[..., d_in]``: per-head hooks (``hook_z``: ``[..., n_heads, d_head]``) are flattened."""
    if activation.dim() >= 1 and activation.shape[-1] == d_in:
        return activation
    if activation.dim() >= 2 and activation.shape[-2] * activation.shape[-1] == d_in:
        return activation.flatten(-2)
    raise ValueError(
        f"the hooked activation has shape {tuple(activation.shape)} but the SAE reads d_in={d_in} features; "
        "hook the point the SAE was trained on (sae.cfg.hook_name)"
    )


def transformer_lens_hook(sae: SparseAutoencoder, *, use_error_term: bool = False) -> Callable[..., Tensor]:
    """A forward hook ``hook(activation, hook=None) -> activation`` that splices ``sae`` into a model.

    The activation is replaced by the SAE's reconstruction, computed in eval mode (BatchTopK with
    its inference threshold theta; the SAE's own mode is restored), in the SAE's dtype and cast
    back. With ``use_error_term=True`` the output equals the input (SAELens's meaning): the
    reconstruction plus the detached error, so gradients flow through the SAE's latents while the
    model's computation is unchanged. Per-head activations ``[..., n_heads, d_head]`` are
    flattened for the SAE and reshaped back.
    """
    if not isinstance(use_error_term, bool):
        raise TypeError(f"use_error_term must be a bool, got {type(use_error_term).__name__}")

    def hook(activation: Tensor, hook: Any = None) -> Tensor:
        if not isinstance(activation, Tensor):
            raise TypeError(f"the hook got {type(activation).__name__}, not a tensor; attach it to a hook point")
        x = _flatten_heads(activation, sae.d_in)
        with eval_mode(sae):
            x_hat = sae(x.to(sae.dtype))
        if use_error_term:
            x_hat = x_hat + (x.to(x_hat.dtype) - x_hat).detach()
        return x_hat.to(activation.dtype).reshape(activation.shape)

    hook.__name__ = hook.__qualname__ = f"{type(sae).__name__}_hook"
    return hook


def to_saelens(
    sae: SparseAutoencoder, *, device: torch.device | str | None = None, metadata: dict[str, Any] | None = None
) -> Any:
    """``sae`` as an ``sae_lens.SAE`` computing the same codes and reconstructions (SAELens 6).

    A BatchTopK SAE becomes SAELens's inference form of one (a JumpReLU with threshold theta), as
    SAELens's own trainer saves it. ``metadata`` adds to ``sae.cfg.metadata`` (SAELens's
    ``HookedSAETransformer.add_sae`` needs ``hook_name``). ``device``: the SAE's by default.
    """
    try:
        from sae_lens import SAE
    except ImportError:
        raise ImportError(
            "to_saelens needs SAELens 6 (`pip install sae-lens`). SAELens 6 pins transformer-lens<4, which the "
            "[lm] extra of sae_fast does not, so use an environment of its own; sae.as_hook() needs no SAELens"
        ) from None
    with tempfile.TemporaryDirectory(prefix="sae_fast_to_saelens_") as folder:
        path = Path(folder) / "sae"
        sae.save_pretrained(path, metadata=metadata)
        return SAE.load_from_disk(str(path), device=str(device if device is not None else sae.device))
