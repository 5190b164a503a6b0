"""EleutherAI sparsify folders: ``cfg.json`` + ``sae.safetensors`` (a TopK SAE).

Tensors: ``encoder.weight [d_sae, d_in]`` and ``encoder.bias [d_sae]`` (an ``nn.Linear``),
``W_dec [d_sae, d_in]``, ``b_dec [d_in]``. The config holds ``d_in``, ``k`` and either
``num_latents`` or ``expansion_factor`` (``d_sae = num_latents or d_in * expansion_factor``).

sparsify's ``SparseCoder.encode`` (sparsify/sparse_coder.py) subtracts ``b_dec`` from the input
only when the coder is *not* a transcoder (``cfg.transcode``), then takes the top-k of
``relu(x @ encoder.weight.T + encoder.bias)``; decoding is ``top_acts @ W_dec + b_dec``. A plain
SAE therefore matches sae_fast's convention as is; a transcoder's encoder sees the raw input and
its ``b_dec`` is folded into ``b_enc`` (the loaded SAE then computes the transcoder's output).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sae_fast.io.building import build_sae, fold_input_centering
from sae_fast.io.reading import check_shape, config_int, read_safetensors, require_file, require_keys
from sae_fast.sae import SparseAutoencoder, TopKSAE

CONFIG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae.safetensors"
KEYS = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")

# sparsify defaults (SparseCoderConfig) for keys an older cfg.json may lack.
_DEFAULT_EXPANSION_FACTOR = 32
_DEFAULT_K = 32
# Options of sparsify and its forks that change what the encoder or decoder computes.
_UNSUPPORTED_OPTIONS = (
    "skip_connection", "signed", "matching_pursuit", "slice_encoder", "slice_decoder", "normalize_io",
    "embed_skip", "gram_lookup", "use_fp8",
)


def load_sparsify(
    directory: Path, cfg: Mapping[str, Any], *, device: torch.device | str | None, dtype: torch.dtype | None
) -> SparseAutoencoder:
    """A :class:`TopKSAE` computing exactly what sparsify computes for the folder ``directory``."""
    cfg_path = directory / CONFIG_FILENAME
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise ValueError(
            f"{cfg_path}: sparsify activation {activation!r} is not supported; sae_fast loads 'topk' coders"
        )
    enabled = [name for name in _UNSUPPORTED_OPTIONS if cfg.get(name)]
    if enabled:
        raise ValueError(
            f"{cfg_path}: sparsify option(s) {enabled} change what the coder computes and have no sae_fast "
            "equivalent; only plain TopK coders (and transcoders without skip connection) can be loaded"
        )
    d_in = config_int(cfg, "d_in", cfg_path)
    num_latents = cfg.get("num_latents") or 0
    if num_latents:
        d_sae = config_int(cfg, "num_latents", cfg_path)
    else:
        factor = cfg.get("expansion_factor", _DEFAULT_EXPANSION_FACTOR)
        d_sae = d_in * config_int({"expansion_factor": factor}, "expansion_factor", cfg_path)
    k = config_int({"k": cfg.get("k", _DEFAULT_K)}, "k", cfg_path)
    if k > d_sae:
        raise ValueError(f"{cfg_path}: k={k} exceeds the number of latents {d_sae}")

    weights_path = require_file(
        directory / WEIGHTS_FILENAME,
        "sparsify weights file",
        f"a sparsify folder holds {CONFIG_FILENAME} and {WEIGHTS_FILENAME}",
    )
    tensors = read_safetensors(weights_path)
    fix = "re-save it with sparsify, or check it is a sparsify SAE folder"
    if "W_skip" in tensors:
        raise ValueError(f"{weights_path} has a skip connection (W_skip), which sae_fast SAEs do not have")
    if "W_dec" not in tensors and "encoder.weight" in tensors:
        raise ValueError(f"{weights_path} has no decoder (saved with decoder=False); sae_fast needs W_dec")
    require_keys(tensors, KEYS, weights_path, fix)
    unexpected = sorted(set(tensors) - set(KEYS))
    if unexpected:
        raise ValueError(f"{weights_path} holds tensors {unexpected} that a sparsify TopK SAE does not have; {fix}")
    why = f"d_in={d_in}, d_sae={d_sae} from {cfg_path.name}"
    expected = {"encoder.weight": (d_sae, d_in), "encoder.bias": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for key, shape in expected.items():
        check_shape(tensors, key, shape, weights_path, why)

    target = dtype or tensors["encoder.weight"].dtype
    W_enc = tensors["encoder.weight"].to(target).t().contiguous()
    b_enc = tensors["encoder.bias"].to(target)
    b_dec = tensors["b_dec"].to(target)
    if cfg.get("transcode", False):
        b_enc = fold_input_centering(W_enc, b_enc, b_dec)
    state = {"W_enc": W_enc, "W_dec": tensors["W_dec"].to(target), "b_enc": b_enc, "b_dec": b_dec}
    return build_sae(TopKSAE, state, k=k, device=device, dtype=target, source=str(weights_path))
