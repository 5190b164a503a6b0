"""What TopK and BatchTopK share: a budget of k active latents per token and the dead-latent aux loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sae_fast.block_decode import block_decode, prefers_dense_block
from sae_fast.kernels.dispatch import REFERENCE_OPS
from sae_fast.kernels.ops import KernelOps
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.output import TrainingOutput
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_nonnegative_float, check_positive_int


class KSparseSAE(SparseAutoencoder):
    """Base of k-sparse SAEs, trained on the sparse path, or with ``dense_training=True`` on the dense
    path peers use (the reference for values and gradients).

    Aux loss (Gao et al.): the residual ``x - x_hat`` (detached) is reconstructed, without decoder
    bias, from the top ``aux_k`` pre-activations among *dead* latents of each token; its MSE times
    ``aux_coefficient`` is added to the loss exactly once. It is zero while no latent is dead.
    """

    def __init__(
        self, d_in: int, d_sae: int, k: int, *, aux_k: int = 512, aux_coefficient: float = 1 / 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(d_in, d_sae, **kwargs)
        self.k = check_positive_int(k, "k", upper=d_sae, upper_name="d_sae")
        self.aux_k = check_positive_int(aux_k, "aux_k")
        self.aux_coefficient = check_nonnegative_float(aux_coefficient, "aux_coefficient")
        self._config.update(k=k, aux_k=aux_k, aux_coefficient=self.aux_coefficient)
        # The [n, d_sae] pre-activation buffer training steps reuse on CPU (not state: never saved).
        self._pre_buffer: Tensor | None = None

    def _training_buffer(self, n_tokens: int) -> Tensor | None:
        """A pre-activation buffer kept across CPU training steps (a fresh one is page-faulted in each step)."""
        if not self.training or self.device.type != "cpu":
            return None  # evaluation keeps no buffer; CUDA's caching allocator already reuses its blocks
        buffer = self._pre_buffer
        if buffer is None or buffer.shape != (n_tokens, self.d_sae) or buffer.dtype != self.dtype:
            buffer = self._pre_buffer = torch.empty(n_tokens, self.d_sae, dtype=self.dtype)
        return buffer

    def train(self, mode: bool = True):
        if not mode:
            self._pre_buffer = None  # evaluation does not need the training buffer's memory
        return super().train(mode)

    def __getstate__(self) -> dict[str, Any]:
        # Copies and pickles of the SAE (e.g. snapshots) do not carry the scratch buffer.
        return {**super().__getstate__(), "_pre_buffer": None}

    def _aux_selection(self) -> tuple[Tensor, int] | None:
        """``(dead latents, aux budget)`` for this step, or None when the aux term is off."""
        if self.aux_coefficient == 0:
            return None
        dead = self.dead_latent_mask().nonzero().flatten()
        if dead.numel() == 0:
            return None
        return dead, min(self.aux_k, dead.numel())

    def _aux_loss(self, residual: Tensor, e_hat: Tensor) -> Tensor:
        return self.aux_coefficient * (e_hat - residual).pow(2).mean()

    def _training_pass(self, x_tokens: Tensor) -> TrainingOutput:
        if self.dense_training:
            output = self._dense_pass(x_tokens)
        else:
            output = self._sparse_pass(x_tokens, self._ops())
        self._after_selection(output.codes)
        return output

    def _dense_pass(self, x_tokens: Tensor) -> TrainingOutput:
        """The path peers use: dense masks and dense matrix products (the gradient reference)."""
        pre = self.pre_activations(x_tokens)
        codes = self.select(pre.detach(), REFERENCE_OPS)
        reconstructions = self._dense_reconstructions(pre * self._mask(codes))
        x_hat = reconstructions[-1]
        aux = None
        aux_selection = self._aux_selection()
        if aux_selection is not None:
            # Peers mask the live latents to zero and take a per-token top-k of the whole matrix.
            dead_only = pre.detach() * self.dead_latent_mask()
            aux_codes = REFERENCE_OPS.topk_select(dead_only, aux_selection[1])
            e_hat = (pre * self._mask(aux_codes)) @ self.W_dec
            aux = self._aux_loss((x_tokens - x_hat).detach(), e_hat)
        return self._output(x_tokens, x_hat, codes, aux=aux, reconstructions=reconstructions)

    def _sparse_pass(self, x_tokens: Tensor, ops: KernelOps) -> TrainingOutput:
        """Only the encoder product is dense; everything after it costs in proportion to n * k.

        The aux term's codes fill a tenth of the dead latents' block at the paper's aux_k = 512 and
        20% dead: there dense products on that block beat the sparse ones (see ``block_decode``).
        """
        with torch.no_grad():
            aux_latents, aux_k = self._aux_selection() or (None, 0)
            codes, aux_codes = ops.encode_select(
                x_tokens, self.W_enc, self.b_enc, self.b_dec, self._selection(x_tokens.shape[0]),
                aux_latents=aux_latents, aux_k=aux_k, out=self._training_buffer(x_tokens.shape[0]),
            )  # fmt: skip
        reconstructions = self._sparse_reconstructions(x_tokens, codes, ops)
        x_hat = reconstructions[-1]
        aux = None
        if aux_codes is not None:
            if prefers_dense_block(aux_codes, aux_latents):
                e_hat = block_decode(aux_codes, x_tokens, self.b_dec, self.W_enc, self.b_enc, self.W_dec, aux_latents)
            else:
                e_hat = self._sparse_reconstruction(x_tokens, aux_codes, ops, with_bias=False)
            aux = self._aux_loss((x_tokens - x_hat).detach(), e_hat)
        return self._output(x_tokens, x_hat, codes, aux=aux, reconstructions=reconstructions)

    def _dense_reconstructions(self, f: Tensor) -> Tensor:
        """What the loss compares with the input, ``[L, n, d_in]`` from dense codes ``f``; the last is x_hat.

        One level here; Matryoshka SAEs return one per dictionary prefix.
        """
        return (f @ self.W_dec + self.b_dec).unsqueeze(0)

    def _sparse_reconstructions(self, x_tokens: Tensor, codes: SparseCodes, ops) -> Tensor:
        """:meth:`_dense_reconstructions` on the sparse path, from the kept codes (detached values)."""
        return self._sparse_reconstruction(x_tokens, codes, ops).unsqueeze(0)

    def _after_selection(self, codes: SparseCodes) -> None:
        """Hook for state that depends on the training selection (BatchTopK's theta)."""
