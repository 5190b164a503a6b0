"""``KernelOps``: the one op set every backend (plain torch, C++, Triton) implements.

The signatures are those of the plain-torch specs beside each fast path (``select_reference``,
``sparse_decode_reference``, ``encode_select_reference``); the autograd Functions and the SAE
modules call these fields and never branch on the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType

from torch import Tensor

from sae_fast.kernels.selection_rule import EncodedSelection, SelectionRule
from sae_fast.sparse_codes import SparseCodes


@dataclass(frozen=True)
class KernelOps:
    """The kernel ops of one backend (``name``: "torch", "cpp" or "triton")."""

    name: str
    batch_topk_select: Callable[[Tensor, int], SparseCodes]
    """``(pre [n, d_sae], k_total)``: the ``k_total`` largest positive entries of the batch."""
    topk_select: Callable[[Tensor, int], SparseCodes]
    """``(pre, k)``: the ``k`` largest positive entries of every row."""
    subset_topk_select: Callable[[Tensor, Tensor, int], SparseCodes]
    """``(pre, latents, k)``: per row, the ``k`` largest positive entries among the columns ``latents``."""
    threshold_select: Callable[[Tensor, Tensor | float], SparseCodes]
    """``(pre, threshold)``: entries strictly above a scalar or per-latent threshold."""
    encode_select: Callable[..., EncodedSelection]
    """``(x, W_enc, b_enc, b_dec, rule, aux_latents=None, aux_k=0, out=None)``: encode, then select (and the
    aux subset); ``out`` is a reusable ``[n, d_sae]`` buffer for the pre-activations."""
    sparse_decode: Callable[..., Tensor]
    """``(codes, W [d_sae, d], bias=None)``: ``out[i] = bias + sum_j values[j] * W[latent(j)]``."""
    nested_sparse_decode: Callable[..., Tensor]
    """``(codes, W, bias, widths)``: the decode of every dictionary prefix, ``[L, n, d]``."""
    sparse_row_dots: Callable[[SparseCodes, Tensor, Tensor], Tensor]
    """``(codes, A [n, d], W [d_sae, d])``: ``out[j] = <A[token(j)], W[latent(j)]>``."""
    sparse_transpose_matmul: Callable[..., Tensor]
    """``(codes, A [n, d], transposed=False)``: ``out[l] = sum_{j: latent(j) = l} values[j] * A[token(j)]``."""

    @classmethod
    def collect(cls, name: str, *modules: ModuleType) -> KernelOps:
        """The op set whose every op is the function of that name in the first of ``modules`` defining it."""
        ops = {}
        for op in (f.name for f in fields(cls) if f.name != "name"):
            found = next((getattr(m, op) for m in modules if callable(getattr(m, op, None))), None)
            if found is None:
                raise AttributeError(f"no module of {[m.__name__ for m in modules]} defines the op {op!r}")
            ops[op] = found
        return cls(name=name, **ops)

    def select(self, pre: Tensor, rule: SelectionRule) -> SparseCodes:
        """The entries of ``pre`` that ``rule`` keeps."""
        return rule.apply(self, pre)
