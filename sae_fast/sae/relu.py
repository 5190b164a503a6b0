"""Standard ReLU SAE with an L1 penalty (Bricken et al.; Anthropic's decoder-norm-weighted form)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sae_fast.autograd import kept_encoder_values, sparse_decode
from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.output import TrainingOutput
from sae_fast.sae.target_l0 import DEFAULT_TARGET_L0_RATE, TargetL0
from sae_fast.sparse_codes import SparseCodes


class ReLUSAE(TargetL0, SparseAutoencoder):
    """``ReLUSAE(d_in, d_sae, l1_coefficient, target_l0=None)``: every positive pre-activation is active.

    Sparsity loss: ``l1_coefficient * mean_tokens(sum_i f_i * ||W_dec[i]||)``; weighting by the
    decoder norm keeps the penalty meaningful if decoder rows are not renormalised. With
    ``target_l0`` the coefficient is steered toward that L0 while training
    (:mod:`sae_fast.sae.target_l0`), ``l1_coefficient`` being where it starts.
    """

    architecture = "relu"

    def __init__(self, d_in: int, d_sae: int, l1_coefficient: float, *, target_l0: float | None = None,
                 target_l0_rate: float = DEFAULT_TARGET_L0_RATE, **kwargs: Any) -> None:
        super().__init__(d_in, d_sae, **kwargs)
        self._config.update(l1_coefficient=float(l1_coefficient))
        self._init_coefficient(l1_coefficient, "l1_coefficient", target_l0, target_l0_rate)

    @property
    def l1_coefficient(self) -> float:
        """The L1 coefficient in use now (the steered value when ``target_l0`` is set)."""
        return float(self.coefficient())

    def _selection(self, n_tokens: int) -> SelectionRule:
        return SelectionRule("threshold", 0.0)

    def _training_pass(self, x_tokens: Tensor) -> TrainingOutput:
        if self.dense_training:
            output = self._dense_pass(x_tokens)
        else:
            output = self._sparse_pass(x_tokens)
        self._observe_l0(output.l0)
        return output

    def _dense_pass(self, x_tokens: Tensor) -> TrainingOutput:
        """The path peers use: every product dense (the gradient reference)."""
        pre = self.pre_activations(x_tokens)
        x_hat = pre @ self.W_dec + self.b_dec
        l1 = (pre * self.W_dec.norm(dim=1)).sum(dim=-1).mean()
        codes = SparseCodes.from_mask(pre.detach(), pre.detach() > 0)
        return self._output(x_tokens, x_hat, codes, sparsity=self.coefficient() * l1)

    def _sparse_pass(self, x_tokens: Tensor) -> TrainingOutput:
        """Only the encoder product is dense. Once the L1 penalty has made the codes sparse (tens of latents
        per token), the decoder, the L1 term and every gradient after the encoder's cost in proportion to
        the active entries; the gradient is the dense path's, since relu passes none where it is zero."""
        ops = self._ops()
        with torch.no_grad():
            codes = self._encode_select(x_tokens, ops)
        values = kept_encoder_values(codes, x_tokens, self.b_dec, self.W_enc, self.b_enc, ops)
        x_hat = sparse_decode(codes.with_values(values), self.W_dec, self.b_dec, ops)
        l1 = (values * self.W_dec.norm(dim=1)[codes.latent_indices]).sum() / x_tokens.shape[0]
        return self._output(x_tokens, x_hat, codes, sparsity=self.coefficient() * l1)

    @torch.no_grad()
    def after_optimizer_step_(self) -> None:
        super().after_optimizer_step_()
        self._steer_coefficient()

    def training_statistics(self) -> dict[str, float]:
        return {**super().training_statistics(), **self.coefficient_statistics()}
