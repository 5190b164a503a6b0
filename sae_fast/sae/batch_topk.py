"""BatchTopK SAE (Bussmann et al.; paper section 6, eqs. 7-8).

Training keeps the ``n * k`` largest positive pre-activations across the whole batch of ``n``
tokens, so each token gets a variable number of latents while the batch average is exactly ``k``
(fewer only if the batch has fewer positive pre-activations). Inference must not depend on the
rest of the batch, so eval mode applies one threshold theta as a JumpReLU:
``f = pre * (pre > theta)``, where theta estimates ``E_X[min{kept activations of batch X}]``.

theta is a running mean of each training batch's smallest kept activation: an exact mean over
the first ``threshold_window`` (default 100) batches, then an exponential average with weight
``1 / threshold_window`` so that early-training batches (whose minima are unlike the final
model's) are forgotten. Each batch minimum is an order statistic of ``n * k`` values and varies
little between batches, so a short window costs almost no precision. Freeze it with
:meth:`freeze_threshold`, set it with :meth:`set_threshold`, or re-estimate it on held-out
batches with :meth:`recalibrate_threshold`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae.k_sparse import KSparseSAE
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_positive_int


class BatchTopKSAE(KSparseSAE):
    """``BatchTopKSAE(d_in, d_sae, k)``: batch-level top-(n·k) in training, threshold theta in eval."""

    architecture = "batchtopk"

    def __init__(self, d_in: int, d_sae: int, k: int, *, threshold_window: int = 100, **kwargs: Any) -> None:
        super().__init__(d_in, d_sae, k, **kwargs)
        self.threshold_window = check_positive_int(threshold_window, "threshold_window")
        self._config.update(threshold_window=threshold_window)
        device = self.W_dec.device
        self.register_buffer("threshold", torch.zeros((), dtype=torch.float32, device=device))
        self.register_buffer("threshold_num_batches", torch.zeros((), dtype=torch.int64, device=device))
        self.register_buffer("threshold_frozen", torch.zeros((), dtype=torch.bool, device=device))

    def _selection(self, n_tokens: int) -> SelectionRule:
        if self.training:
            return SelectionRule("batch_topk", n_tokens * self.k)
        theta = float(self.threshold)
        if theta <= 0:
            raise ValueError(
                "this BatchTopKSAE is in eval mode but its inference threshold theta was never estimated; "
                "train it, call sae.recalibrate_threshold(batches) or sae.set_threshold(value), "
                "or use sae.train() to select with batch top-k"
            )
        return SelectionRule("threshold", theta)

    @torch.no_grad()
    def _after_selection(self, codes: SparseCodes) -> None:
        if not self.training or bool(self.threshold_frozen) or codes.nnz == 0:
            return
        smallest = codes.values.min().to(torch.float32)
        self.threshold_num_batches += 1
        weight = 1.0 / min(int(self.threshold_num_batches), self.threshold_window)
        self.threshold += (smallest - self.threshold) * weight

    def training_state(self) -> dict[str, Tensor]:
        state = super().training_state()
        state.update(threshold=self.threshold.clone(), threshold_num_batches=self.threshold_num_batches.clone())
        return state

    def training_state_reductions(self) -> dict[str, str]:
        # theta's update is linear in the batch minimum, so the mean of the shards' thetas is one
        # update with the mean minimum; the batch counter advances once per step, not per shard.
        return {**super().training_state_reductions(), "threshold": "mean", "threshold_num_batches": "max"}

    @torch.no_grad()
    def merge_training_state_(self, start: dict[str, Tensor], reduced: dict[str, Tensor], n_tokens: int) -> None:
        super().merge_training_state_(start, reduced, n_tokens)
        self.threshold.copy_(reduced["threshold"])
        self.threshold_num_batches.copy_(reduced["threshold_num_batches"])

    def training_statistics(self) -> dict[str, float]:
        return {**super().training_statistics(), "threshold": float(self.threshold)}

    def freeze_threshold(self) -> None:
        """Stop updating theta during training (e.g. for a final fine-tuning phase)."""
        self.threshold_frozen.fill_(True)

    def unfreeze_threshold(self) -> None:
        self.threshold_frozen.fill_(False)

    @torch.no_grad()
    def set_threshold(self, value: float) -> None:
        """Set theta by hand (and freeze it so training does not overwrite it)."""
        # Also refuses NaN, and inf (or a value that becomes inf in theta's float32), which would silence every latent.
        if not 0 < value <= torch.finfo(self.threshold.dtype).max:
            raise ValueError(
                f"theta must be > 0 and finite (a JumpReLU threshold on positive activations), got {value}"
            )
        self.threshold.fill_(float(value))
        self.threshold_frozen.fill_(True)

    @torch.no_grad()
    def recalibrate_threshold(self, batches: Iterable[Tensor]) -> float:
        """Set theta to the mean over ``batches`` of the smallest activation batch top-k keeps.

        Each batch should have the training batch size: theta depends on it through ``n * k``.
        """
        minima = []
        for batch in batches:
            x_tokens = self.normalize_inputs(batch)
            rule = SelectionRule("batch_topk", x_tokens.shape[0] * self.k)
            codes = self._ops().encode_select(x_tokens, self.W_enc, self.b_enc, self.b_dec, rule).codes
            if codes.nnz:
                minima.append(codes.values.min().float())
        if not minima:
            raise ValueError("recalibrate_threshold needs at least one batch with a positive pre-activation")
        self.threshold.copy_(torch.stack(minima).mean())
        self.threshold_num_batches.fill_(len(minima))
        return float(self.threshold)
