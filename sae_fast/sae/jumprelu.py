"""JumpReLU SAE (Rajamanoharan et al., 2024): per-latent thresholds trained with straight-through estimators.

``f = z * H(z - theta)`` with a learned ``theta [d_sae] > 0``; the loss adds
``l0_coefficient * mean_tokens(sum_i H(z_i - theta_i))``. H has no useful derivative, so theta's
gradient uses a rectangle kernel of width ``bandwidth`` around the threshold (pseudo-derivatives
of the paper); z receives the ordinary gradient where the latent is active.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.output import TrainingOutput
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_nonnegative_float


def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u <= 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_theta = -(theta / bw) * _rectangle((z - theta) / bw) * grad
        return grad * (z > theta), grad_theta.reshape(-1, theta.shape[-1]).sum(dim=0), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, theta: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_theta = -(1.0 / bw) * _rectangle((z - theta) / bw) * grad
        return None, grad_theta.reshape(-1, theta.shape[-1]).sum(dim=0), None


class JumpReLUSAE(SparseAutoencoder):
    """``JumpReLUSAE(d_in, d_sae, l0_coefficient=..., bandwidth=0.001)``.

    ``l0_coefficient`` sets the sparsity and must be tuned to reach a target L0 (the paper used
    0.004 / 0.0018 / 0.0008 on GPT-2 for L0 ≈ 16 / 32 / 64). It is swept rather than steered: see
    :mod:`sae_fast.sae.target_l0` for why.
    """

    architecture = "jumprelu"

    def __init__(
        self, d_in: int, d_sae: int, *, l0_coefficient: float = 0.0018, bandwidth: float = 0.001,
        initial_threshold: float = 0.001, **kwargs: Any,
    ) -> None:
        super().__init__(d_in, d_sae, **kwargs)
        self.l0_coefficient = check_nonnegative_float(l0_coefficient, "l0_coefficient")
        self.bandwidth = check_nonnegative_float(bandwidth, "bandwidth")
        if self.bandwidth == 0:
            raise ValueError("bandwidth must be > 0 (it is the width of the straight-through kernel)")
        if not initial_threshold > 0:
            raise ValueError(f"initial_threshold must be > 0, got {initial_threshold}")
        self._config.update(
            l0_coefficient=self.l0_coefficient, bandwidth=self.bandwidth, initial_threshold=initial_threshold
        )
        self.threshold = nn.Parameter(
            torch.full((d_sae,), float(initial_threshold), dtype=self.dtype, device=self.device)
        )

    def _selection(self, n_tokens: int) -> SelectionRule:
        return SelectionRule("threshold", self.threshold.detach())

    def _training_pass(self, x_tokens: Tensor) -> TrainingOutput:
        pre = self.pre_activations(x_tokens)
        f = _JumpReLU.apply(pre, self.threshold, self.bandwidth)
        l0 = _Step.apply(pre, self.threshold, self.bandwidth).sum(dim=-1).mean()
        x_hat = f @ self.W_dec + self.b_dec
        codes = SparseCodes.from_mask(pre.detach(), f.detach() > 0)
        return self._output(x_tokens, x_hat, codes, sparsity=self.l0_coefficient * l0)

    @torch.no_grad()
    def after_optimizer_step_(self) -> None:
        super().after_optimizer_step_()
        # theta must stay positive or the latent degenerates into a plain ReLU.
        self.threshold.clamp_(min=torch.finfo(self.dtype).eps)
