"""A sparsity penalty's coefficient steered toward a target L0 while training (ReLU + L1 SAEs).

An L1 penalty fixes the sparsity only indirectly: the L0 a coefficient gives
depends on the dictionary size, the inputs' scale and how far training has got, so matching an L0
(the paper's Table 2 band) takes a sweep of whole training runs. With ``target_l0`` set,
the coefficient instead moves after every optimiser step by ``exp(rate * log(L0 / target_l0))``: up
while the batch is denser than the target, down while sparser. The loss at each step is still the
architecture's own (ReLU + L1); only its coefficient is scheduled, and the value it
settles at is the one a sweep would have found. A multiplicative step keeps the coefficient positive
and makes the rate independent of its scale.

The current coefficient is a buffer, so checkpoints, resumes and saved SAEs carry it; the
constructor's coefficient is only its starting point. Without ``target_l0`` the coefficient is the
plain constant it always was (and no buffer exists, so older files load unchanged). Each rank of a
multi-process run steers from its own batches: use it single-process.

Why not JumpReLU: its L0 moves only through the thresholds, which Adam moves at a bounded speed
whatever the penalty's size, so a steered coefficient keeps growing while the L0 lags and ends far
past its balance point (measured on this module's test data: the coefficient grew 6x10^5-fold while
the L0 fell from 32 to 11 over 1600 steps, target 8). JumpReLU penalties are swept instead.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sae_fast.validation import check_nonnegative_float

DEFAULT_TARGET_L0_RATE = 0.01
"""Per-step gain: a batch 10x too dense raises the coefficient by about 2.3% that step. On a ReLU SAE 0.01
reached the target within 400 steps without overshoot; at 0.05 the coefficient overshot its balance point 20x
and the L0 fell to 1 (target 8) before recovering (tests/test_target_l0.py's data)."""


class TargetL0:
    """Mixin for SAEs whose loss is ``coefficient * penalty``; call :meth:`_init_coefficient` in ``__init__``."""

    def _init_coefficient(self, value: float, name: str, target_l0: float | None, rate: float) -> None:
        self._coefficient = check_nonnegative_float(value, name)
        self._coefficient_name = name
        if target_l0 is None:
            self.target_l0 = None
            return
        if isinstance(target_l0, bool) or not isinstance(target_l0, (int, float)) or not 0 < target_l0 < math.inf:
            raise ValueError(f"target_l0 must be a positive number of active latents per token, got {target_l0!r}")
        if not self._coefficient > 0:
            raise ValueError(f"{name} must be > 0 when target_l0 is set: it is the starting point of a "
                             "multiplicative search")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f"target_l0_rate must be in (0, 1], got {rate!r}")
        self.target_l0, self.target_l0_rate = float(target_l0), float(rate)
        self.register_buffer("sparsity_coefficient", torch.tensor(self._coefficient, dtype=torch.float32))
        self._batch_l0: Tensor | None = None
        self._config.update(target_l0=self.target_l0, target_l0_rate=self.target_l0_rate)

    def coefficient(self) -> Tensor | float:
        """The coefficient the loss uses now (a 0-d tensor when steered, else the constant)."""
        return self._coefficient if self.target_l0 is None else self.sparsity_coefficient

    def _observe_l0(self, l0: Tensor) -> None:
        """Remember a training pass's mean L0; the next :meth:`after_optimizer_step_` steers from it."""
        if self.target_l0 is not None:
            self._batch_l0 = l0.detach()

    @torch.no_grad()
    def _steer_coefficient(self) -> None:
        if self.target_l0 is None or self._batch_l0 is None:
            return
        # Half a latent per token floors the log: an all-dead batch lowers the coefficient, never divides by 0.
        error = math.log(max(float(self._batch_l0), 0.5) / self.target_l0)
        self.sparsity_coefficient.mul_(math.exp(self.target_l0_rate * error))
        self._batch_l0 = None

    def coefficient_statistics(self) -> dict[str, float]:
        """``{coefficient name: the value in use now}``, for training logs and reports."""
        return {self._coefficient_name: float(self.coefficient())}
