"""Matryoshka BatchTopK SAE (Bussmann, Nabeshima, Karvonen, Nanda, 2025).

The dictionary is trained so that each of its nested prefixes ``[0, w)``, for ``w`` in
``matryoshka_widths``, reconstructs the input on its own: the early latents must carry general
features, because the small prefixes have nothing else. Selection is BatchTopK's, one global
top-(n·k) over every latent (as SAELens does), so the prefixes share one set of codes; each token's
prefix reconstruction is ``b_dec`` plus its kept latents with index below ``w``.

Loss: ``sum_w MSE(prefix_w reconstruction, x)`` (each MSE a mean over tokens and dims, as ``mse``)
plus the aux loss, computed on the whole dictionary's residual. Eval mode is BatchTopK's: one
threshold theta, a JumpReLU, so inference and files are exactly a BatchTopK SAE's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sae_fast.autograd import kept_encoder_values, nested_sparse_decode
from sae_fast.sae.batch_topk import BatchTopKSAE
from sae_fast.sparse_codes import SparseCodes


def check_matryoshka_widths(widths: object, d_sae: int) -> tuple[int, ...]:
    """``widths`` as a tuple after checking it is strictly increasing positive ints ending at ``d_sae``."""
    example = f"e.g. matryoshka_widths=[{max(d_sae // 4, 1)}, {max(d_sae // 2, 1)}, {d_sae}]"
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise TypeError(f"matryoshka_widths must be a non-empty list of ints, {example}; got {widths!r}")
    if any(isinstance(w, bool) or not isinstance(w, int) for w in widths):
        raise TypeError(f"matryoshka_widths must hold ints, {example}; got {list(widths)!r}")
    widths = tuple(int(w) for w in widths)
    if widths[0] <= 0 or any(b <= a for a, b in zip(widths, widths[1:])):
        raise ValueError(f"matryoshka_widths must be positive and strictly increasing, {example}; got {list(widths)}")
    if widths[-1] != d_sae:
        raise ValueError(
            f"the last of matryoshka_widths must be d_sae={d_sae} (the whole dictionary is the outermost level); "
            f"got {list(widths)}: append {d_sae}"
        )
    return widths


class MatryoshkaBatchTopKSAE(BatchTopKSAE):
    """``MatryoshkaBatchTopKSAE(d_in, d_sae, k, matryoshka_widths=[...])``: BatchTopK whose every prefix
    ``[0, w)`` is trained to reconstruct the input on its own."""

    architecture = "matryoshka_batchtopk"

    def __init__(self, d_in: int, d_sae: int, k: int, *, matryoshka_widths: Sequence[int], **kwargs: Any) -> None:
        super().__init__(d_in, d_sae, k, **kwargs)
        self.matryoshka_widths = check_matryoshka_widths(matryoshka_widths, self.d_sae)
        self._config.update(matryoshka_widths=list(self.matryoshka_widths))
        # On the parameters' device for the kernels; not persistent: the config already holds the widths.
        widths = torch.tensor(self.matryoshka_widths, dtype=torch.int64, device=self.W_dec.device)
        self.register_buffer("_level_widths", widths, persistent=False)

    def _dense_reconstructions(self, f: Tensor) -> Tensor:
        # The peers' path: each prefix decoded densely from its slice of the codes.
        return torch.stack([f[:, :w] @ self.W_dec[:w] + self.b_dec for w in self.matryoshka_widths])

    def _sparse_reconstructions(self, x_tokens: Tensor, codes: SparseCodes, ops) -> Tensor:
        values = kept_encoder_values(codes, x_tokens, self.b_dec, self.W_enc, self.b_enc, ops)
        return nested_sparse_decode(codes.with_values(values), self.W_dec, self.b_dec, self._level_widths, ops)
