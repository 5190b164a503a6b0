"""The decoder rows of an SAE, for code that accepts either an SAE or a bare decoder matrix."""

from __future__ import annotations

from torch import Tensor, nn


def decoder_rows(sae_or_decoder: nn.Module | Tensor, name: str = "sae") -> Tensor:
    """The ``[d_sae, d_in]`` decoder rows, detached and unchanged: an SAE's ``W_dec``, or the matrix itself.

    ``name`` is what error messages call the argument.
    """
    if isinstance(sae_or_decoder, Tensor):
        W = sae_or_decoder
    elif isinstance(sae_or_decoder, nn.Module) and isinstance(getattr(sae_or_decoder, "W_dec", None), Tensor):
        W = sae_or_decoder.W_dec
    else:
        raise TypeError(
            f"{name} must be an SAE (a module with W_dec [d_sae, d_in]) or a decoder tensor [d_sae, d_in], "
            f"got {type(sae_or_decoder).__name__}"
        )
    if W.dim() != 2 or not W.is_floating_point():
        raise ValueError(f"{name}'s decoder must be a 2-D float tensor [d_sae, d_in], got {W.dtype} {tuple(W.shape)}")
    return W.detach()
