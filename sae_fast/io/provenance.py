"""What an SAE was trained on, as its config records it: model, hook, context size, BOS, dataset.

SAELens 6 keeps these in ``cfg.json``'s ``metadata``; older SAELens configs (such as the GPT-2
feature-splitting family's) at the top level, some spelling the hook ``hook_point``; sae_fast's saves
in ``metadata``. Gemma Scope's ``params.npz`` records none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sae_fast.io.hub import resolve_sae_folder
from sae_fast.io.reading import read_json
from sae_fast.io.saelens import CONFIG_FILENAME, source_metadata


@dataclass(frozen=True)
class TrainingSource:
    """Each field is None where the config does not say."""

    model_name: str | None = None
    hook_name: str | None = None
    context_size: int | None = None
    prepend_bos: bool | None = None
    dataset_path: str | None = None


def recorded_metadata(reference: str | os.PathLike, sae_id: str | None = None) -> dict[str, Any]:
    """The facts about its activations that an SAE's ``cfg.json`` records (:func:`saelens.source_metadata`),
    for an SAE given as for :func:`~sae_fast.io.load_pretrained`; empty when it has no config."""
    folder = resolve_sae_folder(reference, sae_id)
    cfg_path = (folder if folder.is_dir() else folder.parent) / CONFIG_FILENAME
    if not cfg_path.is_file():
        return {}
    cfg = read_json(cfg_path)
    return source_metadata(cfg, cfg_path) if isinstance(cfg, dict) else {}


def training_source(reference: str | os.PathLike, sae_id: str | None = None) -> TrainingSource:
    """The :class:`TrainingSource` of an SAE given as for :func:`~sae_fast.io.load_pretrained`."""
    facts = recorded_metadata(reference, sae_id)
    values = {name: facts.get(name) for name in TrainingSource.__dataclass_fields__}
    for key in ("model_name", "hook_name", "dataset_path"):
        if not values[key]:  # source_metadata checked the types; an empty name says nothing
            values[key] = None
    return TrainingSource(**values)
