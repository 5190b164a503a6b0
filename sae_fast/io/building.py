"""Turning another library's weights into an sae_fast SAE with identical outputs.

sae_fast's encoder always sees ``x - b_dec``. Libraries whose encoder sees ``x`` itself (Gemma
Scope, SAELens with ``apply_b_dec_to_input=False``, sparsify transcoders) are converted exactly by
folding: ``x @ W_enc + b_enc == (x - b_dec) @ W_enc + (b_enc + b_dec @ W_enc)``. Folds are computed
in float64 and rounded once to the target dtype, so they add no more than one rounding per entry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sae_fast.sae import SparseAutoencoder

_FLOAT_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"`` (the spelling SAELens' configs use)."""
    return str(dtype).removeprefix("torch.")


def parse_dtype(value: object) -> torch.dtype | None:
    """A torch dtype from a config string (``"float32"`` or ``"torch.float32"``), or None if unknown."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        return _FLOAT_DTYPES.get(value.removeprefix("torch."))
    return None


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """The ``dtype`` argument of :func:`load_pretrained`, validated."""
    if dtype is None:
        return None
    parsed = parse_dtype(dtype)
    if parsed is None:
        raise ValueError(f"dtype must be one of {sorted(_FLOAT_DTYPES)} (or a torch float dtype), got {dtype!r}")
    return parsed


def fold_input_centering(W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
    """The ``b_enc`` that makes an encoder of ``x - b_dec`` equal one of ``x``."""
    folded = b_enc.double() + b_dec.double() @ W_enc.double()
    return folded.to(b_enc.dtype)


def fold_decoder_norms(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bake SAELens' ``rescale_acts_by_decoder_norm`` into the weights.

    SAELens then selects on ``pre * ||W_dec[i]||`` and decodes ``f / ||W_dec[i]||``; scaling encoder
    column ``i`` by the norm and dividing decoder row ``i`` by it gives the same codes and output.
    """
    norms = W_dec.double().norm(dim=1).clamp_min(1e-30)
    return (
        (W_enc.double() * norms).to(W_enc.dtype),
        (b_enc.double() * norms).to(b_enc.dtype),
        (W_dec.double() / norms[:, None]).to(W_dec.dtype),
    )


def fold_activation_scale(tensors: dict[str, Tensor], scale: float) -> dict[str, Tensor]:
    """``W_enc``, ``W_dec``, ``b_dec`` of an SAE that sees ``x`` instead of ``scale · x`` (SAELens's fold).

    ``pre = (s·x - b_dec) @ W_enc + b_enc = (x - b_dec/s) @ (s·W_enc) + b_enc`` and the
    reconstruction ``(f @ W_dec + b_dec) / s = f @ (W_dec/s) + b_dec/s``, so codes and outputs agree.
    """
    return {
        "W_enc": (tensors["W_enc"].double() * scale).to(tensors["W_enc"].dtype),
        "W_dec": (tensors["W_dec"].double() / scale).to(tensors["W_dec"].dtype),
        "b_dec": (tensors["b_dec"].double() / scale).to(tensors["b_dec"].dtype),
    }


def build_sae(
    cls: type[SparseAutoencoder],
    state: dict[str, Tensor],
    *,
    device: torch.device | str | None,
    dtype: torch.dtype,
    source: str,
    **kwargs: Any,
) -> SparseAutoencoder:
    """An eval-mode ``cls`` whose parameters are ``state`` (``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, ...).

    Entries of ``state`` must be named like the module's parameters/buffers; buffers not in
    ``state`` (dead-latent counters) keep their fresh values. ``source`` names the file(s) read.
    """
    d_sae, d_in = state["W_dec"].shape
    # A fixed seed: the random initialisation is overwritten at once, and drawing a fresh seed would
    # needlessly touch torch's global RNG.
    kwargs.setdefault("seed", 0)
    sae = cls(int(d_in), int(d_sae), device=device, dtype=dtype, **kwargs)
    load_state(sae, state, source)
    return sae.eval()


def load_state(sae: SparseAutoencoder, state: dict[str, Tensor], source: str) -> None:
    """Copy ``state`` (read from ``source``) into ``sae``, each tensor in the dtype of the entry it fills."""
    own = sae.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(
            f"{source} hold(s) tensors {unexpected} that {type(sae).__name__} does not have; "
            "the files do not belong to this config: re-save the SAE"
        )
    converted = {}
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(
                f"tensor {name!r} in {source} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)} "
                "from the config; the weights do not match the config: re-save the SAE"
            )
        if own[name].is_floating_point() and not tensor.is_floating_point():
            raise ValueError(f"tensor {name!r} in {source} has dtype {tensor.dtype}, expected floating point")
        converted[name] = tensor.to(dtype=own[name].dtype, device=own[name].device)
        if converted[name].is_floating_point() and not torch.isfinite(converted[name]).all():
            if torch.isfinite(tensor).all():
                raise ValueError(
                    f"tensor {name!r} in {source} is finite but too large for {converted[name].dtype}; "
                    "load the SAE with a wider dtype (e.g. dtype=torch.float32)"
                )
            # Loaders that fold or cast before this point may have overflowed already; say so too.
            raise ValueError(
                f"tensor {name!r} in {source} holds NaN or Inf as {converted[name].dtype}, so the SAE would output "
                "NaN; the file is corrupt or its training diverged (re-save it from a good checkpoint), or its values "
                "are too large for that dtype (load the SAE with a wider dtype)"
            )
    sae.load_state_dict(converted, strict=False)
