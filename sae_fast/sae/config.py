"""``sae.cfg``: one typed, read-only view of what an SAE is and where its activations come from.

SAELens users read ``sae.cfg.d_in``, ``sae.cfg.metadata.hook_name`` (SAELens 6) or
``sae.cfg.hook_name`` (SAELens 5); both spellings work here. The view is rebuilt from the module
each time it is read, so it always matches the weights (after ``.to(dtype)`` too) and can never
drift from them. It is frozen: the architecture and shapes are the weights' and cannot be edited,
and the facts about the source (hook, model, context size, ...) change through
``sae.set_metadata(...)``, which ``save_pretrained`` then writes into ``cfg.json["metadata"]``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

KNOWN_METADATA = (
    "model_name", "hook_name", "hook_layer", "hook_head_index", "context_size", "dataset_path", "prepend_bos",
    "model_class_name", "model_from_pretrained_kwargs", "exclude_special_tokens", "neuronpedia_id", "seqpos_slice",
)
"""The metadata fields SAELens 6 names (``SAEMetadata``): reading one that was never set gives None."""

_TYPES = {"model_name": str, "hook_name": str, "dataset_path": str, "model_class_name": str, "neuronpedia_id": str,
          "context_size": int, "hook_layer": int, "hook_head_index": int, "prepend_bos": bool}


def check_metadata(facts: Mapping[str, Any], what: str = "metadata") -> dict[str, Any]:
    """A JSON-able copy of ``facts`` (str keys; known fields of the right type), or an error saying what is wrong."""
    if not isinstance(facts, Mapping):
        raise TypeError(f"{what} must be a dict of JSON-able values, got {type(facts).__name__}")
    checked = {}
    for key, value in facts.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{what} keys must be non-empty strings, got {key!r}")
        kind = _TYPES.get(key)
        wrong_int = kind is int and isinstance(value, bool)
        if value is not None and kind is not None and (not isinstance(value, kind) or wrong_int):
            raise TypeError(f"{what}[{key!r}] must be a {kind.__name__} (or None), got {type(value).__name__} {value!r}")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{what}[{key!r}] must be JSON-able (str, numbers, bools, lists, dicts): {error}") from None
        checked[key] = copy.deepcopy(value)
    return checked


def _read_only(self: object, name: str, value: object = None) -> None:
    raise AttributeError(
        f"{type(self).__name__} is read-only (it is a view of the SAE, rebuilt on every read), so {name!r} cannot "
        "be changed here. Set the source facts (hook_name, model_name, ...) with sae.set_metadata(name=value); "
        "shapes, k and dtype are the weights' own: build or load another SAE (or use sae.to(dtype))"
    )


class SAEMetadata(Mapping[str, Any]):
    """Where the SAE's activations come from, as a read-only mapping with attribute access.

    ``meta.hook_name`` and ``meta["hook_name"]`` both work; a field SAELens names but nobody set
    (see :data:`KNOWN_METADATA`) reads as None, any other missing name raises ``AttributeError``.
    """

    __slots__ = ("_facts",)

    def __init__(self, facts: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_facts", check_metadata(facts or {}))

    def __getitem__(self, key: str) -> Any:
        return self._facts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._facts)

    def __len__(self) -> int:
        return len(self._facts)

    def __getattr__(self, name: str) -> Any:
        facts = object.__getattribute__(self, "_facts")
        if name in facts:
            return facts[name]
        if name in KNOWN_METADATA:
            return None
        raise AttributeError(f"this SAE's metadata has no {name!r}; it holds {sorted(facts)}")

    __setattr__ = _read_only
    __delattr__ = _read_only

    def to_dict(self) -> dict[str, Any]:
        """A mutable (deep) copy."""
        return copy.deepcopy(self._facts)

    def __repr__(self) -> str:
        return f"SAEMetadata({self._facts!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles rebuild through __init__ (no attribute writes)
        return (SAEMetadata, (self._facts,))


@dataclass(frozen=True)
class SAEConfig:
    """What :attr:`SparseAutoencoder.cfg` returns. Fields named as in SAELens where SAELens has them."""

    architecture: str  # sae_fast's name: "batchtopk", "matryoshka_batchtopk", "topk", "jumprelu" or "relu"
    d_in: int
    d_sae: int
    k: int | None  # latents per token (batch average for BatchTopK); None for JumpReLU and ReLU
    dtype: str  # "float32", ... (SAELens's spelling)
    device: str
    normalize_activations: str  # "none", "layer_norm" or "expected_average_only_in"
    metadata: SAEMetadata = field(default_factory=SAEMetadata)
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)  # every other constructor argument
    matryoshka_widths: tuple[int, ...] | None = None
    apply_b_dec_to_input: bool = True  # always: the encoder sees x - b_dec (loaders fold other conventions in)

    @property
    def hook_name(self) -> str | None:
        """Where in the model the SAE reads and writes activations (``cfg.metadata.hook_name``)."""
        return self.metadata.hook_name

    @property
    def model_name(self) -> str | None:
        return self.metadata.model_name

    @property
    def context_size(self) -> int | None:
        return self.metadata.context_size

    @property
    def dataset_path(self) -> str | None:
        return self.metadata.dataset_path

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (``metadata`` and ``hyperparameters`` as plain dicts)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values |= {"metadata": self.metadata.to_dict(), "hyperparameters": copy.deepcopy(dict(self.hyperparameters))}
        if self.matryoshka_widths is not None:
            values["matryoshka_widths"] = list(self.matryoshka_widths)
        return values


# A frozen dataclass already refuses assignment; this says why and what to do instead.
SAEConfig.__setattr__ = _read_only  # type: ignore[method-assign,assignment]
SAEConfig.__delattr__ = _read_only  # type: ignore[method-assign,assignment]
