"""Gemma Scope's ``params.npz``: a JumpReLU SAE whose encoder sees the raw input.

Arrays: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``, ``b_dec [d_in]``,
``threshold [d_sae]`` (some copies spell the matrices ``w_enc``/``w_dec``). Gemma Scope computes
``pre = x @ W_enc + b_enc``, ``f = relu(pre) * (pre > threshold)``, ``x_hat = f @ W_dec + b_dec``:
no ``b_dec`` is subtracted from the input, so it is folded into ``b_enc`` (see
:mod:`sae_fast.io.building`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from sae_fast.io.building import build_sae, fold_input_centering
from sae_fast.io.reading import check_shape, npz_shapes, read_npz, require_keys, require_shapes
from sae_fast.sae import JumpReLUSAE, SparseAutoencoder

PARAMS_FILENAME = "params.npz"
KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")

# The release folders (google/gemma-scope-2b-pt-res, ...; in the Hugging Face cache
# models--google--gemma-scope-2b-pt-res) and the TransformerLens hook each site reads, as SAELens's
# registry of these releases names them.
_RELEASE = re.compile(r"gemma-scope-(\d+b)-(pt|it)-(res|mlp|att)(?![a-z])")
_LAYER = re.compile(r"layer_(\d+)")
_HOOK = {"res": "blocks.{}.hook_resid_post", "mlp": "blocks.{}.hook_mlp_out", "att": "blocks.{}.attn.hook_z"}


def release_metadata(path: Path) -> dict[str, str]:
    """``model_name`` and ``hook_name`` from a Gemma Scope path (``.../gemma-scope-2b-pt-res/layer_12/...``).

    The ``params.npz`` holds only arrays; its folder names are the only record of the source. A path
    that does not follow the release layout gives no facts rather than a guess.
    """
    text = path.resolve().as_posix()
    release = _RELEASE.search(text)
    layers = _LAYER.findall(text[release.end():]) if release else []
    if not release or len(layers) != 1:
        return {}
    size, variant, site = release.groups()
    model = f"gemma-2-{size}" + ("-it" if variant == "it" else "")
    return {"model_name": model, "hook_name": _HOOK[site].format(int(layers[0]))}


def load_gemma_scope(
    path: Path, *, device: torch.device | str | None, dtype: torch.dtype | None
) -> SparseAutoencoder:
    """A :class:`JumpReLUSAE` computing exactly what the Gemma Scope ``params.npz`` at ``path`` computes."""
    # Every check that needs only shapes runs on the npy headers, before any array is read.
    shapes = {_canonical(name): shape for name, shape in npz_shapes(path).items()}
    fix = f"a Gemma Scope {PARAMS_FILENAME} holds {list(KEYS)}; re-download it"
    require_keys(shapes, KEYS, path, fix)
    unexpected = sorted(set(shapes) - set(KEYS))
    if unexpected:
        raise ValueError(f"{path} holds arrays {unexpected} that a Gemma Scope JumpReLU SAE does not have; {fix}")
    if len(shapes["W_enc"]) != 2:
        raise ValueError(f"array 'W_enc' in {path} must be a matrix [d_in, d_sae], got shape {shapes['W_enc']}")
    d_in, d_sae = shapes["W_enc"]
    why = f"d_in={d_in}, d_sae={d_sae} from W_enc"
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,), "threshold": (d_sae,)}
    require_shapes(shapes, expected, path, why)

    arrays = {_canonical(name): array for name, array in read_npz(path).items()}
    for key, shape in expected.items():
        check_shape(arrays, key, shape, path, why)

    target = dtype or arrays["W_enc"].dtype
    W_enc, W_dec, b_enc, b_dec, threshold = (arrays[name].to(target) for name in KEYS)
    state = {
        "W_enc": W_enc,
        "W_dec": W_dec,
        "b_enc": fold_input_centering(W_enc, b_enc, b_dec),
        "b_dec": b_dec,
        "threshold": threshold,
    }
    sae = build_sae(JumpReLUSAE, state, device=device, dtype=target, source=str(path))
    return sae.set_metadata(**release_metadata(path))


def _canonical(name: str) -> str:
    """Some copies spell the matrices ``w_enc``/``w_dec``."""
    return "W_" + name[2:] if name.startswith("w_") else name
