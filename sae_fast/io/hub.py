"""Published SAEs on the Hugging Face Hub: a ``RELEASE:ID`` or ``hf://OWNER/REPO[/FOLDER][@REVISION]`` -> a folder.

Downloads go through ``huggingface_hub.hf_hub_download``, one file at a time, so its cache, revisions,
progress bars, ``HF_HUB_OFFLINE``/``HF_HOME``/``HF_HUB_CACHE`` and the user's login token all apply and
a second load reads the cache. Only the files an SAE needs are fetched: ``cfg.json`` and the weights it
goes with (SAELens ``sae_weights.safetensors``, sparsify ``sae.safetensors``, plus sae_fast's state file
for sae_fast saves) or Gemma Scope's ``params.npz``. The folder is then read by the same loader as a local
one, so a truncated, corrupt or inconsistent download is refused exactly like a local file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sae_fast.io import gemma_scope, native, saelens, sparsify
from sae_fast.io.reading import read_json
from sae_fast.io.releases import GEMMA_SCOPE, find_published_sae, release_registry

HF_PREFIX = "hf://"
_RELEASE_AND_ID = re.compile(r"([A-Za-z0-9][\w.\-]*):(.+)")


@dataclass(frozen=True)
class HubSAE:
    """Where one SAE lives on the Hub."""

    repo_id: str
    folder: str  # "" for the repository's root
    revision: str | None = None
    layout: str | None = None  # a release's SAELens conversion_func; None: recognise the files
    name: str = ""  # how the user named it, for messages

    def file(self, filename: str) -> str:
        return f"{self.folder}/{filename}" if self.folder else filename


def parse_hf_uri(text: str) -> HubSAE:
    """``hf://OWNER/REPO[/FOLDER][@REVISION]`` -> :class:`HubSAE`."""
    body = text[len(HF_PREFIX):]
    revision = None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
        if not revision:
            raise ValueError(f"{text!r} ends with '@' but names no revision; write hf://OWNER/REPO/FOLDER@REVISION "
                             "(a branch, tag or commit) or leave '@' out for main")
    parts = [part for part in body.split("/") if part]
    if len(parts) < 2:
        raise ValueError(f"{text!r} names no repository; write hf://OWNER/REPO[/FOLDER][@REVISION], e.g. "
                         "hf://jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8/blocks.8.hook_resid_pre_768")
    return HubSAE(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision, name=text)


def published_sae(release: str, sae_id: str, revision: str | None = None) -> HubSAE:
    """The Hub location of SAE ``sae_id`` of the published ``release`` (see :mod:`sae_fast.io.releases`)."""
    found, folder = find_published_sae(release, sae_id)
    return HubSAE(found.repo_id, folder, revision, found.layout, name=f"{release}:{sae_id}")


def parse_sae_reference(text: str) -> HubSAE | None:
    """A :class:`HubSAE` if ``text`` is ``hf://...`` or ``RELEASE:ID`` of a known release, else None (a path).

    An existing local path always wins, so a folder whose name holds a colon still loads as a folder.
    """
    if os.path.exists(text):
        return None
    if text.startswith(HF_PREFIX):
        return parse_hf_uri(text)
    match = _RELEASE_AND_ID.fullmatch(text)
    if match is None:
        return None
    release, sae_id = match.groups()
    if release not in release_registry()[0]:
        return None  # a missing local path: the loader says so
    return published_sae(release, sae_id)


def _download(sae: HubSAE, filename: str) -> Path:
    """One file of ``sae`` through huggingface_hub (its cache first when offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    where = f"{sae.repo_id}{'@' + sae.revision if sae.revision else ''}"
    path_in_repo = sae.file(filename)
    try:
        return Path(hf_hub_download(sae.repo_id, path_in_repo, revision=sae.revision))
    except GatedRepoError:
        raise PermissionError(
            f"{sae.repo_id} is gated: accept its licence on huggingface.co/{sae.repo_id} and log in "
            "(`huggingface-cli login` or HF_TOKEN), then retry"
        ) from None
    except LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE=1 or no network) and not in the cache
        raise FileNotFoundError(
            f"{path_in_repo} of {where} (for {sae.name}) is not in the Hugging Face cache and the Hub cannot be "
            "reached (HF_HUB_OFFLINE is set, or there is no network). Load it once with network access, or copy "
            f"it into the cache: `huggingface-cli download {sae.repo_id} --include '{sae.file('*')}'"
            f"{' --revision ' + sae.revision if sae.revision else ''}`"
        ) from None
    except RevisionNotFoundError:
        raise ValueError(f"{sae.repo_id} has no revision {sae.revision!r} (for {sae.name}); give a branch, tag "
                         "or commit of that repository") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"no Hugging Face repository {sae.repo_id!r} (for {sae.name}), or it is private: "
                                "check the name, or log in with `huggingface-cli login`") from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"{where} has no file {path_in_repo} (for {sae.name})") from None


def _try_download(sae: HubSAE, filename: str) -> Path | None:
    """The file, or None if the repository (or, offline, the cache) lacks it."""
    try:
        return _download(sae, filename)
    except FileNotFoundError:
        return None


def download_sae(sae: HubSAE) -> Path:
    """The local folder (in the Hugging Face cache) holding the files ``sae`` needs; downloads what is missing."""
    if sae.layout == GEMMA_SCOPE:
        return _download(sae, gemma_scope.PARAMS_FILENAME).parent
    config = _try_download(sae, saelens.CONFIG_FILENAME)
    if config is None:
        if sae.layout is None:  # a bare hf:// folder may be a Gemma Scope one
            params = _try_download(sae, gemma_scope.PARAMS_FILENAME)
            if params is not None:
                return params.parent
        _download(sae, saelens.CONFIG_FILENAME)  # raises the precise reason (offline, no such file, ...)
    folder = config.parent
    cfg = read_json(config)
    if native.is_native(cfg):
        _download(sae, saelens.WEIGHTS_FILENAME)
        _try_download(sae, native.STATE_FILENAME)  # without it the loader keeps the SAELens view of the SAE
    elif _try_download(sae, saelens.WEIGHTS_FILENAME) is None:
        _download(sae, sparsify.WEIGHTS_FILENAME)
    return folder


def resolve_sae_folder(reference: str | os.PathLike, sae_id: str | None = None, revision: str | None = None) -> Path:
    """The local folder or file of an SAE given as a path, ``RELEASE:ID``, ``hf://...`` or ``(release, sae_id)``."""
    if sae_id is not None:
        return download_sae(published_sae(str(reference), sae_id, revision))
    hub = parse_sae_reference(os.fspath(reference))
    if hub is None:
        releases = release_registry()[0]
        if not os.path.exists(reference) and os.fspath(reference) in releases:
            ids = sorted(releases[os.fspath(reference)].saes)
            raise ValueError(f"{reference!r} is a release of {len(ids)} SAEs; name one: load_pretrained(release, "
                             f"sae_id) or RELEASE:ID, with an id such as {ids[:4]}")
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to published SAEs only; {reference} is a local path")
        return Path(reference)
    if revision is not None:
        hub = HubSAE(hub.repo_id, hub.folder, revision, hub.layout, hub.name)
    return download_sae(hub)
