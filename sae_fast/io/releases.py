"""Published SAE releases by name: which Hugging Face repository and folder a ``RELEASE:ID`` names.

With ``sae_lens`` importable its own registry (``pretrained_saes.yaml``, hundreds of releases) is used,
so a name means exactly what it means to SAELens; otherwise the small registry below, which covers the
families of the paper. Every entry of it was copied from SAELens's ``pretrained_saes.yaml``: no id or
path here is a guess. The paper's own BatchTopK SAEs are not in it: the paper gives no public location
for them ("available on Neuronpedia at Redacted URL").
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SAELENS_FOLDER = None
"""SAELens's ``conversion_func`` for releases stored as SAELens folders (``cfg.json`` + weights)."""
GEMMA_SCOPE = "gemma_2"
"""SAELens's ``conversion_func`` for Gemma Scope's ``params.npz`` folders."""
READABLE_LAYOUTS = (SAELENS_FOLDER, GEMMA_SCOPE)


@dataclass(frozen=True)
class PublishedRelease:
    """One release: a Hub repository holding several SAEs, each in its own folder."""

    name: str
    repo_id: str
    model: str
    saes: Mapping[str, str]
    """SAE id -> folder inside the repository."""
    layout: str | None = SAELENS_FOLDER
    """SAELens's ``conversion_func``: None for SAELens folders, ``"gemma_2"`` for Gemma Scope."""


def _same_id_and_path(ids: list[str]) -> dict[str, str]:
    return {sae_id: sae_id for sae_id in ids}


# Copied from jbloomAus/SAELens sae_lens/pretrained_saes.yaml (the entries named below, ids and paths verbatim).
SHIPPED_RELEASES: dict[str, PublishedRelease] = {
    release.name: release
    for release in (
        # The paper's GPT-2 small family: layer 8 residual stream, 768 to 98304 latents.
        PublishedRelease(
            name="gpt2-small-res-jb-feature-splitting",
            repo_id="jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8",
            model="gpt2-small",
            saes=_same_id_and_path([f"blocks.8.hook_resid_pre_{width}" for width in
                                    (768, 1536, 3072, 6144, 12288, 24576, 49152, 98304)]),
        ),
        # Gemma Scope 2B, residual stream, layer 12, widths 16k and 32k (the paper's Fig. 22 uses one of each).
        PublishedRelease(
            name="gemma-scope-2b-pt-res",
            repo_id="google/gemma-scope-2b-pt-res",
            model="gemma-2-2b",
            saes=_same_id_and_path(
                [f"layer_12/width_16k/average_l0_{l0}" for l0 in (176, 22, 41, 445, 82)]
                + [f"layer_12/width_32k/average_l0_{l0}" for l0 in (12, 155, 22, 360, 40, 76)]
            ),
            layout=GEMMA_SCOPE,
        ),
    )
}

HUB_MODEL_NAMES = {"gpt2-small": "gpt2", "gemma-2-2b": "google/gemma-2-2b"}
"""SAELens's model names (as releases and SAE configs give them) -> Hugging Face Hub model names."""


def hub_model_name(model: str) -> str:
    """The Hub name of a model as an SAE config names it (``gpt2-small`` -> ``gpt2``); others unchanged."""
    return HUB_MODEL_NAMES.get(model, model)


def _from_saelens(lookup: Any) -> PublishedRelease:
    return PublishedRelease(name=lookup.release, repo_id=lookup.repo_id, model=lookup.model,
                            saes=dict(lookup.saes_map), layout=lookup.conversion_func or SAELENS_FOLDER)


def _saelens_directory() -> Mapping[str, Any] | None:
    """SAELens's registry if ``sae_lens`` is importable (its module moved between versions), else None."""
    for module in ("sae_lens.loading.pretrained_saes_directory", "sae_lens.toolkit.pretrained_saes_directory"):
        try:
            imported = __import__(module, fromlist=["get_pretrained_saes_directory"])
        except ImportError:
            continue
        return imported.get_pretrained_saes_directory()
    return None


def release_registry() -> tuple[dict[str, PublishedRelease], str]:
    """Every known release by name, and where the list came from (``"sae_lens"`` or ``"sae_fast"``)."""
    directory = _saelens_directory()
    if directory is None:
        return dict(SHIPPED_RELEASES), "sae_fast"
    return {name: _from_saelens(lookup) for name, lookup in directory.items()}, "sae_lens"


def _close(word: str, choices: list[str], what: str) -> str:
    close = difflib.get_close_matches(word, choices, n=5, cutoff=0.5)
    if close:
        return f"close {what}: {close}"
    return f"{len(choices)} known {what}, e.g. {sorted(choices)[:5]}"


def find_published_sae(release: str, sae_id: str) -> tuple[PublishedRelease, str]:
    """The release called ``release`` and the folder of its SAE ``sae_id``; unknown names list close matches."""
    if not isinstance(release, str) or not release.strip():
        raise ValueError(f"release must be a non-empty release name, e.g. 'gpt2-small-res-jb-feature-splitting', "
                         f"got {release!r}")
    if not isinstance(sae_id, str) or not sae_id.strip():
        raise ValueError(f"sae_id must name one SAE of release {release!r}, got {sae_id!r}")
    releases, source = release_registry()
    found = releases.get(release)
    if found is None:
        more = "" if source == "sae_lens" else (
            "; sae_fast ships only the paper's releases: install sae_lens for its full registry, or name the "
            "repository directly as hf://OWNER/REPO/FOLDER")
        raise ValueError(f"unknown SAE release {release!r} ({_close(release, list(releases), 'releases')}){more}")
    if sae_id not in found.saes:
        raise ValueError(f"release {release!r} has no SAE {sae_id!r} ({_close(sae_id, list(found.saes), 'ids')})")
    if found.layout not in READABLE_LAYOUTS:
        raise ValueError(
            f"release {release!r} is stored in a layout SAELens converts with {found.layout!r}, which sae_fast "
            "does not read; load it with sae_lens.SAE.from_pretrained instead"
        )
    return found, found.saes[sae_id]
