"""``load_pretrained``: one entry point that recognises every supported SAE format by its files.

========================  ==========================================================  ================
format                    files                                                       loaded as
========================  ==========================================================  ================
sae_fast                  ``cfg.json`` (with a ``"sae_fast"`` entry) +                the saved class
                          ``sae_weights.safetensors`` + ``sae_fast_state.safetensors``
SAELens 6 (and older)     ``cfg.json`` + ``sae_weights.safetensors``                  by architecture
EleutherAI sparsify       ``cfg.json`` + ``sae.safetensors``                          TopKSAE
Gemma Scope               ``params.npz``                                              JumpReLUSAE
========================  ==========================================================  ================
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sae_fast.io import gemma_scope, native, saelens, sparsify
from sae_fast.io.building import resolve_dtype
from sae_fast.io.hub import resolve_sae_folder
from sae_fast.io.reading import read_json
from sae_fast.kernels.dispatch import check_backend
from sae_fast.sae import SparseAutoencoder

_CONFIG = saelens.CONFIG_FILENAME  # every folder format calls its config cfg.json
_FILE_NAMES = (
    _CONFIG, saelens.WEIGHTS_FILENAME, native.STATE_FILENAME, sparsify.WEIGHTS_FILENAME, gemma_scope.PARAMS_FILENAME,
)


def load_pretrained(
    path: str | os.PathLike,
    sae_id: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    *,
    backend: str = "auto",
    revision: str | None = None,
) -> SparseAutoencoder:
    """Load an SAE saved by sae_fast, SAELens, EleutherAI sparsify or Gemma Scope, from disk or the Hub.

    ``load_pretrained("gpt2-small-res-jb-feature-splitting", "blocks.8.hook_resid_pre_768")`` and
    ``load_pretrained("gpt2-small-res-jb-feature-splitting:blocks.8.hook_resid_pre_768")`` load a published
    SAE by release name; ``load_pretrained("hf://OWNER/REPO/FOLDER@REVISION")`` one from any Hub folder.
    Published SAEs are downloaded through ``huggingface_hub`` (see :mod:`sae_fast.io.hub`) and checked
    exactly like local files.

    Args:
        path: the SAE's folder, or one of its files (``cfg.json``, ``sae_weights.safetensors``,
            ``sae.safetensors``, a Gemma Scope ``params.npz`` or any other ``.npz`` of that layout); or a
            published SAE: a release name (with ``sae_id``), ``RELEASE:ID``, or ``hf://OWNER/REPO[/FOLDER][@REV]``.
            An existing local path always wins over the published forms.
        sae_id: with a release name as ``path``, which of its SAEs (unknown names list close matches).
        device: where to put the SAE (default: torch's default device, normally the CPU).
        dtype: parameter dtype (default: the one the files store or their config names).
        backend: the kernels the SAE runs with (see ``SparseAutoencoder``): a choice of this
            machine, never read from the files.
        revision: for a published SAE, the branch, tag or commit to load (default: main).

    Returns:
        The matching sae_fast SAE in eval mode, computing the same codes and reconstructions as
        the library that wrote it (biases are re-expressed for sae_fast's ``x - b_dec`` encoder
        where the library differs). Call ``.train()`` to continue training it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if sae_id is not None and not isinstance(sae_id, str):
        raise TypeError(f"sae_id must be a str naming one SAE of the release (device is a keyword argument: "
                        f"device=...), got {type(sae_id).__name__}")
    if sae_id is not None and _names_a_device(sae_id):
        # The second positional argument was `device` before release names existed.
        raise TypeError(f"load_pretrained's second argument is the release's SAE id, and {sae_id!r} names a device; "
                        f"pass it as a keyword: load_pretrained(path, device={sae_id!r})")
    if revision is not None and not isinstance(revision, str):
        raise TypeError(f"revision must be a branch, tag or commit string, got {type(revision).__name__}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    dtype = resolve_dtype(dtype)
    if backend != "dense":  # the deprecated alias: the SAE's setter warns and maps it to dense_training
        check_backend(backend)
    sae = _load(resolve_sae_folder(path, sae_id, revision), device, dtype)
    sae.backend = backend
    return sae


def _load(path: Path, device: torch.device | str | None, dtype: torch.dtype | None) -> SparseAutoencoder:
    if not path.exists():
        raise FileNotFoundError(
            f"no SAE at {path}: the path does not exist (a published SAE is named RELEASE:ID, e.g. "
            "gpt2-small-res-jb-feature-splitting:blocks.8.hook_resid_pre_768, or hf://OWNER/REPO/FOLDER)"
        )

    if path.is_file():
        if path.suffix == ".npz":
            return gemma_scope.load_gemma_scope(path, device=device, dtype=dtype)
        if path.name not in _FILE_NAMES:
            raise ValueError(
                f"{path} is not a file of a known SAE format; pass the SAE's folder or one of {list(_FILE_NAMES)}"
            )
        prefer_sparsify = path.name == sparsify.WEIGHTS_FILENAME
        path = path.parent
    else:
        prefer_sparsify = False

    cfg_path = path / _CONFIG
    if cfg_path.is_file():
        cfg = read_json(cfg_path)
        if native.is_native(cfg):
            sae = native.load_native(path, cfg, device=device, dtype=dtype)
            return sae.set_metadata(**saelens.source_metadata(cfg, cfg_path))
        has_saelens = (path / saelens.WEIGHTS_FILENAME).is_file()
        has_sparsify = (path / sparsify.WEIGHTS_FILENAME).is_file()
        if has_sparsify and (prefer_sparsify or not has_saelens):
            return sparsify.load_sparsify(path, cfg, device=device, dtype=dtype)
        if has_saelens:
            sae = saelens.load_saelens_folder(path, cfg, device=device, dtype=dtype)
            return sae.set_metadata(**saelens.source_metadata(cfg, cfg_path))
        raise FileNotFoundError(
            f"{path} has {_CONFIG} but no weights file: expected {saelens.WEIGHTS_FILENAME} (sae_fast / SAELens) "
            f"or {sparsify.WEIGHTS_FILENAME} (sparsify); copy the weights next to the config"
        )
    if (path / gemma_scope.PARAMS_FILENAME).is_file():
        return gemma_scope.load_gemma_scope(path / gemma_scope.PARAMS_FILENAME, device=device, dtype=dtype)

    markers = (_CONFIG, gemma_scope.PARAMS_FILENAME)
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir() and any((p / m).is_file() for m in markers))
    if subfolders:
        raise ValueError(
            f"{path} holds several SAEs, one per subfolder ({subfolders[:5]}{' ...' if len(subfolders) > 5 else ''}); "
            f"pass one of them, e.g. {path / subfolders[0]}"
        )
    raise FileNotFoundError(
        f"no SAE found in {path}: expected {_CONFIG} with {saelens.WEIGHTS_FILENAME} (sae_fast / SAELens) or "
        f"{sparsify.WEIGHTS_FILENAME} (sparsify), or {gemma_scope.PARAMS_FILENAME} (Gemma Scope)"
    )


# What ``SparseAutoencoder.from_pretrained`` calls: the modules sit below io and cannot import it.
SparseAutoencoder.register_pretrained_loader(load_pretrained)


def _names_a_device(text: str) -> bool:
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return False
    return True
