"""sae_fast's own save format: a SAELens 6 folder plus what SAELens cannot express.

A save is exactly what SAELens' ``SAE.load_from_disk`` loads (``cfg.json`` +
``sae_weights.safetensors``, see :mod:`sae_fast.io.saelens`), so every sae_fast SAE can be used
from SAELens. Two additions restore the sae_fast module exactly, and SAELens ignores both:

- ``cfg.json["sae_fast"]``: the format version and the module's ``config_dict()`` (architecture,
  k, training hyper-parameters, dtype). SAELens keeps only the config keys it knows.
- ``sae_fast_state.safetensors``: every parameter/buffer that ``sae_weights.safetensors`` does not
  hold verbatim, e.g. BatchTopK's scalar theta and its running-mean state, and the dead-latent
  counters. It is a separate file because SAELens loads its weights file strictly.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor

from sae_fast.io.atomic import atomic_directory
from sae_fast.io.building import dtype_name, load_state
from sae_fast.io.reading import config_int, read_safetensors, require_keys, require_shapes, safetensors_shapes
from sae_fast.io.saelens import CONFIG_FILENAME, SPARSITY_FILENAME, WEIGHTS_FILENAME, saelens_files
from sae_fast.io.saelens import _SAELENS_ARCHITECTURE as SAELENS_ARCHITECTURE
from sae_fast.sae import BatchTopKSAE, SparseAutoencoder

FORMAT_KEY = "sae_fast"
FORMAT_VERSION = 1
STATE_FILENAME = "sae_fast_state.safetensors"
SAVE_FILENAMES = (CONFIG_FILENAME, WEIGHTS_FILENAME, STATE_FILENAME, SPARSITY_FILENAME)


def save_pretrained(
    sae: SparseAutoencoder, directory: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save ``sae`` to ``directory`` so that both sae_fast and SAELens 6 can load it.

    Args:
        sae: any sae_fast SAE (BatchTopK, TopK, JumpReLU, ReLU).
        directory: the folder to write; created if needed. An existing save there is replaced
            atomically (a crash mid-save leaves the previous save intact); a folder holding other
            files is refused rather than overwritten.
        metadata: JSON-able facts for SAELens' ``cfg.metadata``, e.g. ``model_name``,
            ``hook_name``, ``context_size``, ``dataset_path``, added to the SAE's own
            (``sae.cfg.metadata``, see ``sae.set_metadata``); both are read back as ``sae.cfg``.

    Returns:
        The path of the saved folder.
    """
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"sae must be an sae_fast SAE (e.g. BatchTopKSAE), got {type(sae).__name__}")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path (str or os.PathLike), got {type(directory).__name__}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of JSON-able values, got {type(metadata).__name__}")
    # The SAE's own facts (sae.cfg.metadata), then the caller's, which win where both name one.
    cfg, weights = saelens_files(sae, {**sae.cfg.metadata.to_dict(), **(metadata or {})})
    cfg[FORMAT_KEY] = {"format_version": FORMAT_VERSION, "config": sae.config_dict()}
    try:
        cfg_text = json.dumps(cfg, indent=2)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must hold only JSON-able values (str, numbers, lists, dicts): {error}") from None

    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in sae.state_dict().items()}
    # Everything the SAELens file does not hold verbatim (buffers, and weights SAELens's format folded).
    extra = {
        name: tensor
        for name, tensor in state.items()
        if name not in weights or weights[name].shape != tensor.shape or weights[name].dtype != tensor.dtype
        or not torch.equal(weights[name], tensor)
    }
    directory = Path(directory)
    needed = sum(t.numel() * t.element_size() for t in (*weights.values(), *extra.values())) + len(cfg_text)
    with atomic_directory(directory, SAVE_FILENAMES, needed_bytes=needed + 2**16) as staging:
        _save_tensors(weights, staging / WEIGHTS_FILENAME, directory)
        _save_tensors(extra, staging / STATE_FILENAME, directory)
        (staging / CONFIG_FILENAME).write_text(cfg_text, encoding="utf-8")
    return directory


def _save_tensors(tensors: dict[str, Tensor], path: Path, directory: Path) -> None:
    """``save_file`` whose I/O failures are ``OSError``s naming the save (safetensors reports them as its own)."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as error:
        code = re.search(r"code: (\d+)", str(error))
        number = int(code.group(1)) if code else errno.EIO
        raise OSError(number, f"{os.strerror(number)} (while writing {path.name})", str(directory)) from None


def is_native(cfg: Mapping[str, Any]) -> bool:
    return isinstance(cfg.get(FORMAT_KEY), dict)


def load_native(
    directory: Path, cfg: Mapping[str, Any], *, device: torch.device | str | None, dtype: torch.dtype | None
) -> SparseAutoencoder:
    """The module that :func:`save_pretrained` wrote to ``directory``, in eval mode."""
    cfg_path = directory / CONFIG_FILENAME
    block = cfg[FORMAT_KEY]
    version = block.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{cfg_path} uses sae_fast format version {version!r}; this sae_fast reads versions up to "
            f"{FORMAT_VERSION}: upgrade sae_fast"
        )
    config = block.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{cfg_path}: the 'sae_fast' entry has no 'config' object; re-save the SAE")
    config = dict(config)
    config.pop("backend", None)  # older saves pinned it; the loader's caller chooses it now
    _check_agrees_with_saelens_keys(cfg, config, cfg_path)
    if dtype is not None:
        config["dtype"] = dtype_name(dtype)
    config.setdefault("seed", 0)  # parameters are overwritten below; avoid touching the global RNG
    state_path = directory / STATE_FILENAME
    if not state_path.exists() and config.get("normalize_activations") == "expected_average_only_in":
        config["normalize_activations"] = "none"  # only the SAELens files are left, with the scale folded in
    weights_path = directory / WEIGHTS_FILENAME
    _check_sizes_against_header(config, weights_path, cfg_path)
    try:
        sae = SparseAutoencoder.from_config_dict(config, device=device)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{cfg_path}: cannot rebuild the SAE from its 'sae_fast' config: {error}") from None

    tensors = read_safetensors(weights_path)
    extra = read_safetensors(state_path) if state_path.exists() else None
    if isinstance(sae, BatchTopKSAE) and "threshold" in tensors:
        _check_uniform_threshold(tensors["threshold"], extra, weights_path)
    tensors.update(extra or {})
    if extra is None and isinstance(sae, BatchTopKSAE) and "threshold" in tensors:
        # Only the SAELens files are left: theta is the (uniform) per-latent JumpReLU threshold.
        tensors["threshold"] = tensors["threshold"].reshape(-1)[0].float()
        tensors["threshold_frozen"] = torch.tensor(True)
    source = f"{weights_path} + {STATE_FILENAME}" if extra is not None else str(weights_path)
    _check_complete(sae, tensors, source, have_state=extra is not None)
    load_state(sae, tensors, source)
    return sae.eval()


def _check_sizes_against_header(config: Mapping[str, Any], weights_path: Path, cfg_path: Path) -> None:
    """The config's ``d_in``/``d_sae`` are what the weights file holds, checked before the SAE is built.

    Building allocates ``d_in * d_sae`` parameters from the config alone, so a small ``cfg.json``
    declaring a huge SAE would exhaust memory before the weights could contradict it.
    """
    d_in, d_sae = config_int(config, "d_in", cfg_path), config_int(config, "d_sae", cfg_path)
    shapes = safetensors_shapes(weights_path)
    why = f"d_in={d_in}, d_sae={d_sae} from {cfg_path.name}"
    require_keys(shapes, ("W_enc", "W_dec"), weights_path, "the save is incomplete, re-save the SAE")
    require_shapes(shapes, {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in)}, weights_path, why)


def _check_agrees_with_saelens_keys(cfg: Mapping[str, Any], config: Mapping[str, Any], cfg_path: Path) -> None:
    """SAELens reads the top-level keys and sae_fast the ``"sae_fast"`` block: both must describe one SAE."""
    expected = {"d_in": config.get("d_in"), "d_sae": config.get("d_sae")}
    expected["architecture"] = SAELENS_ARCHITECTURE.get(config.get("architecture"))
    clashes = [
        f"{key}={cfg[key]!r} (the 'sae_fast' entry implies {value!r})"
        for key, value in expected.items()
        if key in cfg and value is not None and cfg[key] != value
    ]
    if clashes:
        raise ValueError(
            f"{cfg_path} contradicts itself: top-level {', '.join(clashes)}; SAELens and sae_fast would load "
            "different SAEs from it. Re-save the SAE, or fix the edited entries"
        )


def _check_uniform_threshold(threshold: Tensor, extra: dict[str, Tensor] | None, weights_path: Path) -> None:
    """A BatchTopK save stores theta in every latent; per-latent thresholds mean a JumpReLU's weights."""
    theta = threshold.reshape(-1)[0]
    # The weights file rounds theta to the SAE's dtype; the state file keeps it in float32.
    saved_theta = theta if extra is None or "threshold" not in extra else extra["threshold"].to(theta.dtype)
    if bool((threshold == saved_theta).all()):
        return
    raise ValueError(
        f"{weights_path} holds per-latent thresholds that differ from the BatchTopK theta its config declares "
        "(loading it as BatchTopK would replace them by one scalar); the weights were changed after sae_fast "
        "saved them. Remove the 'sae_fast' entry from cfg.json to load them as a JumpReLU SAE, or re-save the SAE"
    )


def _check_complete(sae: SparseAutoencoder, tensors: dict[str, Tensor], source: str, have_state: bool) -> None:
    missing = sorted(set(sae.state_dict()) - set(tensors))
    # Without the state file, fresh buffers (dead-latent counters) are acceptable; parameters never.
    fatal = missing if have_state else sorted(set(missing) & {name for name, _ in sae.named_parameters()})
    if fatal:
        raise ValueError(
            f"{source} lack(s) tensor(s) {fatal} of {type(sae).__name__}; the save is incomplete, re-save the SAE"
        )


# What ``sae.save_pretrained(directory)`` calls: the modules sit below io and cannot import it.
SparseAutoencoder.register_pretrained_writer(save_pretrained)
