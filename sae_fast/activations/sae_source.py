"""Activations for published SAEs, streamed from the model they were trained on (no cache needed).

The model, hook, context size, BOS and dataset come from the SAEs' configs
(:func:`sae_fast.io.provenance.training_source`); any of them can be given instead, and must be where the
configs are silent (Gemma Scope records none) or disagree. Normalisation needs nothing here: the
loaded SAE applies its own (``normalize_activations``) to the raw activations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_fast.activations.config import ActivationConfig
from sae_fast.activations.text_sources import OPENWEBTEXT

_FLAGS = {"model_name": "--model", "hook_name": "--hook-name", "context_size": "--seq-len",
          "prepend_bos": "--prepend-bos/--no-prepend-bos", "dataset_path": "--texts"}


@dataclass(frozen=True)
class SAEActivationSource:
    """The model (Hub name), text source spec and activation settings shared by some SAEs."""

    model: str
    texts: str
    config: ActivationConfig


def _agreed(sources: Sequence[Any], field: str, given: Any, names: Sequence[str], default: Any = None) -> Any:
    if given is not None:
        return given
    known = {getattr(source, field) for source in sources} - {None}
    if len(known) > 1:
        raise ValueError(f"the SAEs {list(names)} record different {field} values {sorted(map(str, known))}; "
                         f"pass {_FLAGS[field]} to choose")
    if known:
        return known.pop()
    if default is None:
        raise ValueError(f"the configs of {list(names)} do not record {field}; pass {_FLAGS[field]}")
    return default


def texts_spec(dataset_path: str) -> str:
    """A text-source spec (see ``text_source_from_spec``) for a dataset as an SAE config names it."""
    return "openwebtext" if dataset_path == OPENWEBTEXT else f"hf:{dataset_path}"


def activation_source(
    references: Sequence[str | os.PathLike], *, model: str | None = None, texts: str | None = None,
    hook_name: str | None = None, seq_len: int | None = None, prepend_bos: bool | None = None,
    max_tokens: int | None = None,
) -> SAEActivationSource:
    """Where to read activations for the SAEs ``references`` (paths, ``RELEASE:ID`` or ``hf://``)."""
    from sae_fast.io.provenance import training_source
    from sae_fast.io.releases import hub_model_name

    names = [str(reference) for reference in references]
    sources = [training_source(reference) for reference in references]
    model = hub_model_name(_agreed(sources, "model_name", model, names))
    texts = texts if texts is not None else texts_spec(_agreed(sources, "dataset_path", None, names))
    seq_len = _agreed(sources, "context_size", seq_len, names, default=128)
    config = ActivationConfig(
        hook_name=_agreed(sources, "hook_name", hook_name, names), seq_len=seq_len,
        prepend_bos=_agreed(sources, "prepend_bos", prepend_bos, names, default=False),
        # Rows come in sequence order, one sequence per batch, so none is dropped but a partial last one.
        shuffle_buffer_size=0, batch_size=seq_len - 1, max_tokens=max_tokens,
    )
    return SAEActivationSource(model, texts, config)


def stream_sae_activations(source: SAEActivationSource, model: Any, progress: bool = False) -> Tensor:
    """The first ``source.config.max_tokens`` rows ``[n, d]`` (whole sequences) of ``model`` on its texts."""
    from sae_fast.activations.stream import ActivationStream
    from sae_fast.activations.text_sources import text_source_from_spec

    stream = ActivationStream(model, text_source_from_spec(source.texts), source.config, progress=progress)
    batches = list(stream)
    if not batches:
        raise ValueError(f"{source.texts!r} gave no whole sequence of {source.config.seq_len} tokens; give "
                         "longer texts or a smaller --seq-len")
    return torch.cat(batches)
