"""``TRITON_OPS``: the Triton kernels behind the op names every backend shares.

The kernel modules are imported on first call, not here: Triton decides at decoration time
whether a kernel is compiled for the GPU or run by the CPU interpreter (``TRITON_INTERPRET=1``),
so importing this module early (e.g. from ``sae_fast.kernels.dispatch``) must not freeze that
choice before a test or script has set the variable.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sae_fast.kernels.ops import KernelOps
from sae_fast.kernels.selection_rule import EncodedSelection, SelectionRule
from sae_fast.kernels.triton_interpreter import interpreting


def is_available() -> bool:
    """Triton is importable and there is a GPU to run on, or the CPU interpreter is on."""
    if importlib.util.find_spec("triton") is None:
        return False
    return torch.cuda.is_available() or interpreting()


def _kernel(module: str, name: str) -> Callable[..., Any]:
    """``sae_fast.kernels.<module>.<name>``, imported when first called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"sae_fast.kernels.{module}"), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


_RULE_KEYWORD = {"batch_topk": "k_total", "topk": "k", "threshold": "threshold"}


def _encode_select(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, rule: SelectionRule,
    aux_latents: Tensor | None = None, aux_k: int = 0, out: Tensor | None = None,
) -> EncodedSelection:  # fmt: skip
    # ``out`` is for CPU backends, which page-fault a fresh buffer in; CUDA's caching allocator reuses its own.
    from sae_fast.kernels import encode_select_triton

    encoded = encode_select_triton.encode_select(
        x, W_enc, b_enc, b_dec, **{_RULE_KEYWORD[rule.kind]: rule.value}, aux_latents=aux_latents, aux_k=aux_k
    )
    return EncodedSelection(encoded.codes, encoded.aux_codes)


TRITON_OPS = KernelOps(
    name="triton",
    batch_topk_select=_kernel("select_triton", "batch_topk_select"),
    topk_select=_kernel("select_triton", "topk_select"),
    subset_topk_select=_kernel("select_triton", "subset_topk_select"),
    threshold_select=_kernel("select_triton", "threshold_select"),
    encode_select=_encode_select,
    sparse_decode=_kernel("sparse_products_triton", "sparse_decode"),
    nested_sparse_decode=_kernel("sparse_products_triton", "nested_sparse_decode"),
    sparse_row_dots=_kernel("sparse_products_triton", "sparse_row_dots"),
    sparse_transpose_matmul=_kernel("sparse_products_triton", "sparse_transpose_matmul"),
)
