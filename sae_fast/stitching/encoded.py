"""Encode an evaluation set with both SAEs once; every stitching analysis reuses these codes.

A stitched SAE's codes are just the two SAEs' codes restricted to the chosen latents (each SAE
encodes ``x`` with its own encoder), so one pass per SAE serves every step of the interpolation
path and every per-latent analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.sae.eval_mode import eval_mode
from sae_fast.sparse_codes import SparseCodes
from sae_fast.stitching.config import StitchingConfig, as_stitching_config
from sae_fast.validation import check_activations


def concat_codes(parts: list[SparseCodes]) -> SparseCodes:
    """Stack codes of consecutive token batches into one CSR."""
    if not parts:
        raise ValueError("concat_codes needs at least one batch")
    offsets, shift = [parts[0].row_offsets[:1]], 0
    for p in parts:
        offsets.append(p.row_offsets[1:] + shift)
        shift += p.nnz
    return SparseCodes(
        torch.cat(offsets),
        torch.cat([p.latent_indices for p in parts]),
        torch.cat([p.values for p in parts]),
        parts[0].d_sae,
    )


@torch.no_grad()
def encode_sparse_batched(sae: nn.Module, x: Tensor, batch_size: int = 4096) -> SparseCodes:
    """``sae.encode_sparse`` over ``x`` ``[n, d_in]`` in eval mode, ``batch_size`` tokens at a time.

    Falls back to the dense ``sae.encode`` (entries > 0 kept) for SAEs without ``encode_sparse``.
    """
    with eval_mode(sae):
        parts = []
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            if hasattr(sae, "encode_sparse"):
                parts.append(sae.encode_sparse(chunk))
            else:
                dense = sae.encode(chunk).reshape(chunk.shape[0], -1)
                parts.append(SparseCodes.from_mask(dense, dense > 0))
    return concat_codes(parts)


@dataclass(frozen=True)
class LatentColumns:
    """Codes re-ordered by latent (CSC): latent ``l`` owns ``offsets[l]:offsets[l + 1]``."""

    offsets: Tensor  # int64 [d_sae + 1]
    tokens: Tensor  # int64 [nnz], ascending within a latent
    values: Tensor  # [nnz]

    @staticmethod
    def from_codes(codes: SparseCodes) -> LatentColumns:
        order = torch.argsort(codes.latent_indices, stable=True)
        counts = torch.bincount(codes.latent_indices, minlength=codes.d_sae)
        offsets = torch.zeros(codes.d_sae + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, dim=0, out=offsets[1:])
        return LatentColumns(offsets, codes.token_indices()[order], codes.values[order])

    def counts(self) -> Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def entries(self, latents: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(tokens, values, latent)`` of every entry of the given latents."""
        starts, ends = self.offsets[latents], self.offsets[latents + 1]
        lengths = ends - starts
        owner = torch.repeat_interleave(torch.arange(latents.numel(), device=latents.device), lengths)
        within = torch.arange(int(lengths.sum()), device=latents.device) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths
        )
        positions = starts[owner] + within
        return self.tokens[positions], self.values[positions], latents[owner]


@dataclass(frozen=True)
class EncodedEvalSet:
    """Evaluation tokens ``x`` ``[n, d_in]`` and both SAEs' codes of them.

    ``x`` is in the SAEs' shared normalised space (the input itself when they do not normalise):
    the codes come from the raw tokens, and reconstructions are compared with this ``x``.
    """

    x: Tensor
    small_codes: SparseCodes
    large_codes: SparseCodes

    @property
    def n_tokens(self) -> int:
        return self.x.shape[0]


def encode_eval_set(
    small: nn.Module, large: nn.Module, x: Tensor, config: StitchingConfig | int | None = None, **fields: Any
) -> EncodedEvalSet:
    """Validate ``x`` (``[..., d_in]``, flattened to tokens) and encode it with both SAEs.

    ``config.encode_batch_size`` tokens go through an encoder at a time (a bare number is that batch
    size); ``fields`` replace config fields.
    """
    batch_size = as_stitching_config(config, number_field="encode_batch_size", **fields).encode_batch_size
    d_in = small.W_dec.shape[1]
    if large.W_dec.shape[1] != d_in:
        raise ValueError(
            f"the two SAEs reconstruct different widths ({d_in} vs {large.W_dec.shape[1]}); "
            "stitching needs SAEs trained on the same activations"
        )
    x = check_activations(x, d_in, device=small.W_dec.device, dtype=small.W_dec.dtype)
    small_codes, large_codes = encode_sparse_batched(small, x, batch_size), encode_sparse_batched(large, x, batch_size)
    return EncodedEvalSet(shared_normalized_inputs(small, large, x), small_codes, large_codes)


def _normalization_key(sae: nn.Module) -> tuple[str, float]:
    mode = getattr(sae, "normalize_activations", "none")
    scale = float(sae.activation_scale) if mode == "expected_average_only_in" else 1.0
    return mode, scale


def check_same_normalization(small: nn.Module, large: nn.Module) -> tuple[str, float]:
    """The two SAEs' shared ``(normalize_activations, scale)``; refuses SAEs that normalise differently."""
    key = _normalization_key(small)
    if _normalization_key(large) != key:
        raise ValueError(
            f"the two SAEs normalise their inputs differently ({key} vs {_normalization_key(large)}); stitching "
            "needs SAEs that reconstruct in the same space: train both with the same normalize_activations "
            "(layer_norm is parameter-free)"
        )
    return key


def shared_normalized_inputs(small: nn.Module, large: nn.Module, x: Tensor) -> Tensor:
    """``x`` in the space both SAEs reconstruct in; every stitching MSE is measured there.

    Stitching swaps decoder rows between the SAEs, which is only meaningful when both normalise
    their inputs the same way (layer_norm has no parameters, so any two layer_norm SAEs do).
    """
    if check_same_normalization(small, large)[0] == "none":
        return x
    with torch.no_grad():
        return small.normalize_inputs(x)
