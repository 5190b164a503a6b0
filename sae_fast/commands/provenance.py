"""Is an SAE being used on the activations it was trained for? Checked before a command computes anything.

``sae-fast train`` records in each SAE folder's metadata the model (``model_name``), the hook
(``hook_name``) and, when it trained on a cache, that cache's identity (content fingerprint and the
rows of its training split). An SAE of one hook evaluated, recalibrated, stitched or compared against
activations of another hook or model of the same width gives numbers without meaning, so
:func:`check_provenance` refuses a mismatch unless the user passes ``--allow-other-activations``; an
SAE that records neither (another library's format, a hand-made folder) only draws a warning.
:func:`overlapping_training_rows` finds evaluation rows the SAE was trained on (the same cache
extracted again with another ``--heldout-fraction`` has the same fingerprint but other split bounds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sae_fast.io.provenance import recorded_metadata

ALLOW_FLAG = "--allow-other-activations"


def add_provenance_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="use SAEs on activations of another model or hook than they record (refused otherwise)")


def _recorded(metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    model, hook = metadata.get("model_name"), metadata.get("hook_name")
    return (model if isinstance(model, str) else None), (hook if isinstance(hook, str) else None)


def cache_provenance(manifest: dict[str, Any]) -> tuple[set[str], str]:
    """The names a cache's model goes by (its label and its load name) and its hook."""
    return {str(name) for name in (manifest.get("model"), manifest.get("model_source")) if name}, str(
        manifest.get("hook_name"))


def check_provenance(sae_path: str | Path, models: set[str], hook: str, against: str, allow: bool) -> None:
    """Refuse (or with ``allow`` warn) when the SAE at ``sae_path`` records another model or hook than
    ``models``/``hook`` of ``against`` (a cache or another SAE); warn when it records neither."""
    model, sae_hook = _recorded(recorded_metadata(sae_path))
    if model is None and sae_hook is None:
        print(f"warning: {sae_path} does not record the model and hook it was trained on, so nothing checks "
              f"that {against} holds the right activations", file=sys.stderr, flush=True)
        return
    differences = []
    if model is not None and models and model not in models:
        differences.append(f"model {model!r} vs {sorted(models)[0]!r}")
    if sae_hook is not None and hook and sae_hook != hook:
        differences.append(f"hook {sae_hook!r} vs {hook!r}")
    if not differences:
        return
    message = (f"{sae_path} was trained on other activations than {against}: {'; '.join(differences)}")
    if allow:
        print(f"warning: {message} (allowed by {ALLOW_FLAG})", file=sys.stderr, flush=True)
        return
    raise ValueError(f"{message}. Its numbers there would mean nothing; give activations of its model and hook, "
                     f"or pass {ALLOW_FLAG} if this is intended")


def check_sae_against_cache(sae_path: str | Path, manifest: dict[str, Any], cache: str | Path, allow: bool) -> None:
    models, hook = cache_provenance(manifest)
    check_provenance(sae_path, models, hook, f"the cache {cache}", allow)


def check_sae_against_sae(sae_path: str | Path, other: str | Path, allow: bool) -> None:
    model, hook = _recorded(recorded_metadata(other))
    check_provenance(sae_path, {model} if model else set(), hook or "", f"the SAE {other}", allow)


def overlapping_training_rows(sae_path: str | Path, reader: Any) -> int:
    """Rows of ``reader``'s split that the SAE was trained on, as far as its metadata tells (0 if unknown).

    A cache's training split is its first ``count`` rows, so an SAE trained on a cache with the same
    content fingerprint saw every row before that bound, whatever split the reader now serves.
    """
    identity = recorded_metadata(sae_path).get("activation_cache_identity")
    if not isinstance(identity, dict) or identity.get("split") != "train" or not isinstance(identity.get("count"), int):
        return 0
    if identity.get("fingerprint") != reader.fingerprint:
        return 0
    first = reader.first_sequence * int(reader.manifest["rows_per_sequence"])
    return max(0, min(first + reader.num_rows, identity["count"]) - first)
