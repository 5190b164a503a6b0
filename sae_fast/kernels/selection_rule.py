"""Which pre-activations an SAE keeps, as data: the one argument every selecting op understands.

Every architecture's selection is one of three rules over the non-negative pre-activations
``[n, d_sae]``: BatchTopK keeps the ``n * k`` largest of the whole batch, TopK the ``k`` largest of
each row, JumpReLU/ReLU (and BatchTopK in eval mode) those strictly above a threshold. Expressing it
as data lets a backend run the selection inside its encoder (see ``encode_select``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from torch import Tensor

from sae_fast.sparse_codes import SparseCodes

RuleKind = Literal["batch_topk", "topk", "threshold"]


@dataclass(frozen=True)
class SelectionRule:
    """``kind`` and its one parameter: ``k_total`` (batch_topk), ``k`` (topk) or ``threshold`` (scalar or ``[d_sae]``)."""

    kind: RuleKind
    value: int | float | Tensor

    def __post_init__(self) -> None:
        if self.kind not in ("batch_topk", "topk", "threshold"):
            raise ValueError(f"SelectionRule kind must be 'batch_topk', 'topk' or 'threshold', got {self.kind!r}")

    def apply(self, ops, pre: Tensor) -> SparseCodes:
        """The kept entries of ``pre`` under this rule, computed by ``ops`` (any backend's op set)."""
        if self.kind == "batch_topk":
            return ops.batch_topk_select(pre, self.value)
        if self.kind == "topk":
            return ops.topk_select(pre, self.value)
        return ops.threshold_select(pre, self.value)


class EncodedSelection(NamedTuple):
    """What ``encode_select`` returns."""

    codes: SparseCodes
    """The kept entries (values are the pre-activations)."""
    aux_codes: SparseCodes | None
    """Top-``aux_k`` of each row among ``aux_latents``; None when no ``aux_latents`` were given."""
