"""Standard ReLU SAE with an L1 penalty (Bricken et al.; Anthropic's decoder-norm-weighted form)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.output import TrainingOutput
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_nonnegative_float


class ReLUSAE(SparseAutoencoder):
    """``ReLUSAE(d_in, d_sae, l1_coefficient)``: every positive pre-activation is active.

    Sparsity loss: ``l1_coefficient * mean_tokens(sum_i f_i * ||W_dec[i]||)``; weighting by the
    decoder norm keeps the penalty meaningful if decoder rows are not renormalised.
    """

    architecture = "relu"

    def __init__(self, d_in: int, d_sae: int, l1_coefficient: float, **kwargs: Any) -> None:
        super().__init__(d_in, d_sae, **kwargs)
        self.l1_coefficient = check_nonnegative_float(l1_coefficient, "l1_coefficient")
        self._config.update(l1_coefficient=self.l1_coefficient)

    def _selection(self, n_tokens: int) -> SelectionRule:
        return SelectionRule("threshold", 0.0)

    def _training_pass(self, x_tokens: Tensor) -> TrainingOutput:
        pre = self.pre_activations(x_tokens)
        x_hat = pre @ self.W_dec + self.b_dec
        l1 = (pre * self.W_dec.norm(dim=1)).sum(dim=-1).mean()
        codes = SparseCodes.from_mask(pre.detach(), pre.detach() > 0)
        return self._output(x_tokens, x_hat, codes, sparsity=self.l1_coefficient * l1)
