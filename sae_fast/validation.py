"""Input checks shared by every public entry point, so each failure says what was wrong and how to fix it."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor


def check_activations(
    x: object, d_in: int, *, device: torch.device, check_finite: bool = True, name: str = "x",
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Validate activations ``[..., d_in]`` and return them flattened to ``[n_tokens, d_in]``.

    Leading dimensions are flattened because every statistic (L0, batch top-k budget, theta) is
    defined per token, not per sequence. With ``dtype`` (the SAE's), they are also cast to it, and
    finiteness is checked after the cast: a float64 value beyond float32's range is finite before it.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [..., {d_in}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (activations), got dtype {x.dtype}; "
            f"convert with {name}.float()"
        )
    if x.dim() == 0 or x.shape[-1] != d_in:
        raise ValueError(
            f"{name} must have last dimension d_in={d_in}, got shape {tuple(x.shape)}; "
            "check the hook point / model width this SAE was trained for"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one token")
    if x.device != device:
        raise ValueError(
            f"{name} is on {x.device} but the SAE's parameters are on {device}; "
            f"move one of them, e.g. {name}.to({str(device)!r})"
        )
    source = x
    if dtype is not None:
        x = x.to(dtype)
    if check_finite and not torch.isfinite(x).all():
        bad = (~torch.isfinite(x.reshape(-1, d_in))).any(dim=1).nonzero().flatten()
        if torch.isfinite(source).all():
            raise ValueError(
                f"{name} overflows the SAE's dtype {dtype} in {bad.numel()} token(s) (first: {bad[:5].tolist()}): "
                f"its {source.dtype} values are finite but too large for {dtype}; rescale the activations, "
                "or load the SAE in a wider dtype"
            )
        raise ValueError(
            f"{name} contains NaN or Inf in {bad.numel()} token(s) (first: {bad[:5].tolist()}); "
            "clean the activations, or pass check_finite=False to the SAE to skip this check for speed"
        )
    return x.reshape(-1, d_in)


def check_int(
    value: object, name: str, *, lower: int, upper: int | None = None, upper_name: str = "", hint: str = ""
) -> int:
    """An integer in ``[lower, upper]``; bools are rejected because ``True`` silently means 1.

    ``upper_name`` says what the upper bound is (e.g. ``"d_sae"``); ``hint`` is appended to the
    message of a value out of range, to say how to fix it.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    suffix = f"; {hint}" if hint else ""
    if value < lower:
        raise ValueError(f"{name} must be >= {lower}, got {value}{suffix}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper_name or upper} ({upper}), got {value}{suffix}")
    return value


def check_positive_int(value: object, name: str, *, upper: int | None = None, upper_name: str = "", hint: str = "") -> int:
    """An integer in ``[1, upper]`` (see :func:`check_int`)."""
    return check_int(value, name, lower=1, upper=upper, upper_name=upper_name, hint=hint)


def check_nonnegative_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def import_optional(module: str, extra: str, purpose: str) -> Any:
    """``importlib.import_module(module)``, or an ImportError naming the pip extra that installs it.

    ``pip install sae-fast`` installs what training and evaluating SAEs need; packages for one
    purpose (``lm``: extracting activations from a language model; ``gpu``: Triton kernels) come
    with an extra, and their imports wait until that purpose is asked for.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs {module.split('.')[0]!r}, which is not installed ({error}); install sae_fast's "
            f"{extra!r} extra: pip install 'sae-fast[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
        ) from error
