"""The SAELens 6 folder format: ``cfg.json`` + ``sae_weights.safetensors``.

Layout (as ``sae_lens.SAE.load_from_disk`` reads it): tensors ``W_enc [d_in, d_sae]``,
``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``, ``b_dec [d_in]`` and, for JumpReLU, ``threshold
[d_sae]``; SAELens loads them with a *strict* ``load_state_dict``, so the weights file may hold
nothing else. The config names the ``architecture`` and gives ``d_in``, ``d_sae``, ``dtype``,
``device``, ``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations`` and a
free-form ``metadata`` object; unknown top-level keys are dropped by SAELens' config parsing.

Mapping to sae_fast: ``standard`` <-> ReLU, ``topk`` <-> TopK, ``jumprelu`` <-> JumpReLU.
BatchTopK is written the way SAELens saves its own BatchTopK for inference: as ``jumprelu`` with
theta repeated for every latent and ``metadata.training_architecture = "batchtopk"``, which is
also how such files are recognised on loading. A Matryoshka BatchTopK SAE computes a BatchTopK's
outputs at inference and is written the same way, as SAELens writes its own, with
``training_architecture = "matryoshka_batchtopk"`` and its widths in ``training_architecture_details``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sae_fast.io.building import (
    build_sae,
    dtype_name,
    fold_activation_scale,
    fold_decoder_norms,
    fold_input_centering,
    parse_dtype,
)
from sae_fast.io.reading import (
    check_shape,
    config_int,
    is_integral,
    read_safetensors,
    require_file,
    require_keys,
)
from sae_fast.sae import BatchTopKSAE, JumpReLUSAE, MatryoshkaBatchTopKSAE, ReLUSAE, SparseAutoencoder, TopKSAE
from sae_fast.sae.config import KNOWN_METADATA, check_metadata

CONFIG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"  # optional SAELens file: feature firing statistics
CONFIG_FORMAT_VERSION = "6.0.0"
"""The SAELens config format written: SAELens treats configs below 6.0 as legacy and rewrites them."""

SUPPORTED_ARCHITECTURES = ("standard", "topk", "jumprelu", "batchtopk")
_SAELENS_ARCHITECTURE = {
    "relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu",
    "matryoshka_batchtopk": "jumprelu",
}


# ---------------------------------------------------------------------------------------- writing
def saelens_files(sae: SparseAutoencoder, metadata: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """The SAELens ``cfg.json`` object and ``sae_weights.safetensors`` tensors that reproduce ``sae``."""
    architecture = sae.architecture
    if architecture not in _SAELENS_ARCHITECTURE:
        raise ValueError(f"cannot save architecture {architecture!r} in SAELens format")
    tensors = {
        name: getattr(sae, name).detach().to("cpu").contiguous() for name in ("W_enc", "W_dec", "b_enc", "b_dec")
    }
    normalization = sae.normalize_activations
    if normalization == "expected_average_only_in":
        # As SAELens saves it: the scale folded into the weights, so the file needs no run-time scaling.
        tensors.update(fold_activation_scale(tensors, float(sae.activation_scale)))
        normalization = "none"
    meta = {"sae_lens_version": CONFIG_FORMAT_VERSION, "sae_lens_training_version": None, **(metadata or {})}
    cfg: dict[str, Any] = {
        "architecture": _SAELENS_ARCHITECTURE[architecture],
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": dtype_name(sae.dtype),
        "device": "cpu",
        "apply_b_dec_to_input": True,  # sae_fast's encoder always sees x - b_dec
        "normalize_activations": normalization,
        "reshape_activations": "none",
    }
    if architecture == "topk":
        cfg.update(k=sae.k, rescale_acts_by_decoder_norm=False)
    elif architecture == "jumprelu":
        tensors["threshold"] = sae.threshold.detach().to("cpu").contiguous()
    elif isinstance(sae, BatchTopKSAE):
        theta = float(sae.threshold)
        if theta <= 0:
            warnings.warn(
                f"saving a {type(sae).__name__} whose threshold theta was never estimated: SAELens will load it as a "
                "JumpReLU with threshold 0 (a plain ReLU SAE); train it or call recalibrate_threshold() first",
                stacklevel=3,
            )
        # theta is compared in the SAE's dtype (threshold_select casts it), so store it in that dtype.
        tensors["threshold"] = torch.full((sae.d_sae,), theta, dtype=sae.dtype)
        meta["training_architecture"] = architecture
        meta["training_architecture_details"] = {"k": sae.k}
        if isinstance(sae, MatryoshkaBatchTopKSAE):
            meta["training_architecture_details"]["matryoshka_widths"] = list(sae.matryoshka_widths)
    cfg["metadata"] = meta
    return cfg, tensors


# ---------------------------------------------------------------------------------------- reading
FORMAT_METADATA = ("sae_lens_version", "sae_lens_training_version", "training_architecture",
                   "training_architecture_details")
"""``cfg.metadata`` entries that describe the file, not the activations: written afresh on every save."""


def source_metadata(cfg: Mapping[str, Any], cfg_path: Path) -> dict[str, Any]:
    """The facts about the activations in a SAELens (or sae_fast) ``cfg.json``, for ``sae.set_metadata``.

    SAELens 6 keeps them in ``cfg["metadata"]``; older configs at the top level (the oldest
    spelled the hook ``hook_point``). A fact of the wrong type is skipped with a warning rather
    than refusing weights that load fine.
    """
    metadata = cfg.get("metadata")
    facts = dict(metadata) if isinstance(metadata, dict) else {}
    legacy = {key: cfg.get(key) for key in KNOWN_METADATA} | {"hook_name": cfg.get("hook_name", cfg.get("hook_point"))}
    facts = {**{k: v for k, v in legacy.items() if v is not None}, **facts}
    kept: dict[str, Any] = {}
    for key, value in facts.items():
        if key in FORMAT_METADATA or value is None:
            continue
        try:
            kept.update(check_metadata({key: value}))
        except TypeError as error:
            warnings.warn(f"{cfg_path}: metadata entry ignored: {error}", stacklevel=3)
    return kept


def _architecture(cfg: Mapping[str, Any], cfg_path: Path) -> tuple[str, dict[str, Any]]:
    """SAELens architecture name and a copy of ``cfg`` with pre-6.0 spellings mapped to 6.0 ones."""
    cfg = dict(cfg)
    activation = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    if "architecture" not in cfg:  # configs written before SAELens 6 had no architecture key
        kwargs = cfg.get("activation_fn_kwargs") or {}
        if activation == "topk" and isinstance(kwargs, dict) and "k" in kwargs:
            cfg["architecture"], cfg["k"] = "topk", kwargs["k"]
        else:
            cfg["architecture"] = "standard"
    architecture = cfg["architecture"]
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{cfg_path}: SAELens architecture {architecture!r} is not supported; sae_fast loads "
            f"{list(SUPPORTED_ARCHITECTURES)}. Convert the SAE to one of these (or load it with SAELens)"
        )
    if architecture == "standard" and activation not in (None, "relu"):
        raise ValueError(
            f"{cfg_path}: a standard SAE with activation {activation!r} is not supported; "
            "sae_fast's ReLUSAE needs activation 'relu'"
        )
    return architecture, cfg


def _normalization(cfg: Mapping[str, Any], cfg_path: Path) -> str:
    """The sae_fast ``normalize_activations`` that computes what SAELens computes for this config."""
    normalization = cfg.get("normalize_activations", "none")
    if normalization in ("none", None, False):
        return "none"
    if normalization == "layer_norm":
        return "layer_norm"
    if normalization == "expected_average_only_in":
        # SAELens applies no scaling at run time for this value (its trainer folds the scale into
        # the weights before saving), so neither do we.
        warnings.warn(
            f"{cfg_path}: normalize_activations='expected_average_only_in' is applied by SAELens's trainer, not "
            "at run time; loading the weights as they are (as SAELens does): pass activations scaled the way "
            "the SAE was trained",
            stacklevel=4,
        )
        return "none"
    raise ValueError(
        f"{cfg_path}: normalize_activations={normalization!r} is not supported by sae_fast (it supports 'none', "
        "'layer_norm' and 'expected_average_only_in'); normalise your activations yourself and set it to "
        "'none', or use SAELens"
    )


def _check_preprocessing(cfg: Mapping[str, Any], cfg_path: Path) -> None:
    if cfg.get("finetuning_scaling_factor"):
        raise ValueError(f"{cfg_path}: finetuning_scaling_factor is not supported by sae_fast")
    if cfg.get("reshape_activations", "none") == "hook_z":
        warnings.warn(
            f"{cfg_path} is a hook_z SAE: pass activations flattened to [..., n_heads * d_head] "
            "(SAELens reshapes them itself; sae_fast does not)",
            stacklevel=4,
        )


def _number(value: object, default: float | None) -> float | None:
    """A training coefficient from a config if it is a finite number >= 0, else ``default``."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if valid else default


def load_saelens_folder(
    directory: Path, cfg: Mapping[str, Any], *, device: torch.device | str | None, dtype: torch.dtype | None
) -> SparseAutoencoder:
    """An sae_fast SAE computing exactly what SAELens computes for the folder ``directory``."""
    cfg_path = directory / CONFIG_FILENAME
    architecture, cfg = _architecture(cfg, cfg_path)
    _check_preprocessing(cfg, cfg_path)
    normalization = _normalization(cfg, cfg_path)
    d_in, d_sae = config_int(cfg, "d_in", cfg_path), config_int(cfg, "d_sae", cfg_path)
    weights_path = require_file(
        directory / WEIGHTS_FILENAME,
        "SAELens weights file",
        f"a SAELens folder holds {CONFIG_FILENAME} and {WEIGHTS_FILENAME}",
    )
    tensors = read_safetensors(weights_path)
    scaling = tensors.pop("scaling_factor", None)
    if scaling is not None and not torch.all(scaling == 1):
        raise ValueError(f"{weights_path}: a scaling_factor other than 1 is not supported by sae_fast")
    if architecture == "jumprelu" and "threshold" not in tensors and "log_threshold" in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").double().exp()  # older SAELens checkpoints

    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if architecture == "jumprelu":
        expected["threshold"] = (d_sae,)
    elif architecture == "batchtopk":
        expected["topk_threshold"] = ()
    fix = f"the file does not match architecture {architecture!r} in {cfg_path}; re-save the SAE"
    require_keys(tensors, expected, weights_path, fix)
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ValueError(f"{weights_path} holds tensors {unexpected} that a {architecture!r} SAE does not have; {fix}")
    for key, shape in expected.items():
        check_shape(tensors, key, shape, weights_path, f"d_in={d_in}, d_sae={d_sae} in {cfg_path.name}")

    # SAELens casts every tensor to the config's dtype before computing; so do we.
    target = dtype or parse_dtype(cfg.get("dtype")) or tensors["W_enc"].dtype
    W_enc, W_dec, b_enc, b_dec = (tensors[name].to(target) for name in ("W_enc", "W_dec", "b_enc", "b_dec"))
    if architecture in ("topk", "batchtopk") and cfg.get("rescale_acts_by_decoder_norm", False):
        W_enc, b_enc, W_dec = fold_decoder_norms(W_enc, b_enc, W_dec)
    if not cfg.get("apply_b_dec_to_input", True):
        b_enc = fold_input_centering(W_enc, b_enc, b_dec)
    state = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
    build = {"device": device, "dtype": target, "source": str(weights_path), "normalize_activations": normalization}

    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    details = metadata.get("training_architecture_details")
    details = details if isinstance(details, dict) else {}
    if architecture == "standard":
        l1 = _number(cfg.get("l1_coefficient", details.get("l1_coefficient")), 0.0)
        return build_sae(ReLUSAE, state, l1_coefficient=l1, **build)
    if architecture == "topk":
        return build_sae(TopKSAE, state, k=_k(cfg.get("k"), d_sae, cfg_path), **build)
    if architecture == "batchtopk":
        theta = float(tensors["topk_threshold"])
        return _batch_topk(state, _k(cfg.get("k"), d_sae, cfg_path), theta, build)

    threshold = tensors["threshold"]
    k = details.get("k", cfg.get("k"))
    uniform = bool(torch.all(threshold == threshold[0]))
    # A BatchTopK saved for inference; with a fractional k (allowed by SAELens) it stays a JumpReLU,
    # which computes the same outputs but cannot be trained as BatchTopK.
    trained_as = metadata.get("training_architecture")
    if trained_as in ("batchtopk", "matryoshka_batchtopk") and uniform and float(threshold[0]) > 0 and _is_k(k, d_sae):
        widths = details.get("matryoshka_widths")
        if trained_as == "matryoshka_batchtopk" and _is_widths(widths, d_sae):
            build = {**build, "matryoshka_widths": [int(w) for w in widths]}
            return _batch_topk(state, int(k), float(threshold[0]), build, MatryoshkaBatchTopKSAE)
        return _batch_topk(state, int(k), float(threshold[0]), build)
    state["threshold"] = threshold
    kwargs = {}
    l0_coefficient = _number(cfg.get("l0_coefficient", details.get("l0_coefficient")), None)
    bandwidth = _number(cfg.get("bandwidth", details.get("bandwidth")), None)
    if l0_coefficient is not None:
        kwargs["l0_coefficient"] = l0_coefficient
    if bandwidth:  # must be > 0
        kwargs["bandwidth"] = bandwidth
    return build_sae(JumpReLUSAE, state, **kwargs, **build)


def _is_k(value: object, d_sae: int) -> bool:
    """Whether ``value`` is a usable k: an integer (possibly stored as a float) in ``[1, d_sae]``."""
    return is_integral(value) and 1 <= value <= d_sae


def _k(value: object, d_sae: int, cfg_path: Path) -> int:
    if not _is_k(value, d_sae):
        raise ValueError(
            f"{cfg_path}: k must be an integer in [1, d_sae={d_sae}] for sae_fast's k-sparse SAEs, got {value!r}"
        )
    return int(value)


def _is_widths(value: object, d_sae: int) -> bool:
    """Whether ``value`` is a usable list of Matryoshka widths (else the SAE loads as a plain BatchTopK)."""
    if not isinstance(value, list) or not value or not all(is_integral(w) for w in value):
        return False
    widths = [int(w) for w in value]
    return widths[0] > 0 and all(b > a for a, b in zip(widths, widths[1:])) and widths[-1] == d_sae


def _batch_topk(
    state: dict[str, Tensor], k: int, theta: float, build: dict, cls: type[BatchTopKSAE] = BatchTopKSAE
) -> BatchTopKSAE:
    # theta came from someone else's training run: freeze it so further training refines the
    # weights without silently replacing it by a one-batch estimate.
    state = {
        **state,
        "threshold": torch.tensor(theta, dtype=torch.float32),
        "threshold_frozen": torch.tensor(True),
    }
    return build_sae(cls, state, k=k, **build)
