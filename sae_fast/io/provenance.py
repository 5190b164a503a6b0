"""What an SAE was trained on, as its config records it: model, hook, context size, BOS, dataset.

SAELens 6 keeps these in ``cfg.json``'s ``metadata``; older SAELens configs (such as the GPT-2
feature-splitting family's) at the top level, some spelling the hook ``hook_point``; sae_fast's saves
in ``metadata``. Gemma Scope's ``params.npz`` records none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae_fast.io.hub import resolve_sae_folder
from sae_fast.io.reading import read_json
from sae_fast.io.saelens import CONFIG_FILENAME

_KEYS = {"model_name": ("model_name",), "hook_name": ("hook_name", "hook_point"),
         "context_size": ("context_size",), "prepend_bos": ("prepend_bos",), "dataset_path": ("dataset_path",)}


@dataclass(frozen=True)
class TrainingSource:
    """Each field is None where the config does not say."""

    model_name: str | None = None
    hook_name: str | None = None
    context_size: int | None = None
    prepend_bos: bool | None = None
    dataset_path: str | None = None


def _first(cfg: dict[str, Any], metadata: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for block in (metadata, cfg):  # SAELens 6 moved them into metadata; a top-level copy is older
        for key in keys:
            if block.get(key) is not None:
                return block[key]
    return None


def training_source(reference: str | os.PathLike, sae_id: str | None = None) -> TrainingSource:
    """The :class:`TrainingSource` of an SAE given as for :func:`~sae_fast.io.load_pretrained`."""
    folder = resolve_sae_folder(reference, sae_id)
    folder = folder if folder.is_dir() else folder.parent
    cfg_path = Path(folder) / CONFIG_FILENAME
    if not cfg_path.is_file():
        return TrainingSource()
    cfg = read_json(cfg_path)
    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    values = {field: _first(cfg, metadata, keys) for field, keys in _KEYS.items()}
    if not isinstance(values["context_size"], int) or isinstance(values["context_size"], bool):
        values["context_size"] = None
    if not isinstance(values["prepend_bos"], bool):
        values["prepend_bos"] = None
    for key in ("model_name", "hook_name", "dataset_path"):
        if not isinstance(values[key], str) or not values[key]:
            values[key] = None
    return TrainingSource(**values)
