"""``TRITON_OPS``: the Triton kernels behind the op names every backend shares.

The kernel modules are imported on first use, not here: Triton decides at decoration time
whether a kernel is compiled for the GPU or run by the CPU interpreter (``TRITON_INTERPRET=1``),
so importing this module early (e.g. from ``sae_fast.kernels.dispatch``) must not freeze that
choice before a test or script has set the variable.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import torch

# op name -> module (under sae_fast.kernels) that defines it
_OP_MODULES = {
    "batch_topk_select": "select_triton",
    "topk_select": "select_triton",
    "subset_topk_select": "select_triton",
    "threshold_select": "select_triton",
    "sparse_decode": "sparse_products_triton",
    "nested_sparse_decode": "sparse_products_triton",
    "sparse_row_dots": "sparse_products_triton",
    "sparse_transpose_matmul": "sparse_products_triton",
    "encode_select": "encode_select_triton",
    "encode": "encode_select_triton",
}


class TritonOps:
    """Namespace of the Triton ops; attributes resolve lazily to the kernel modules' functions."""

    name = "triton"

    def is_available(self) -> bool:
        """Triton is importable and there is a GPU to run on, or the CPU interpreter is on."""
        if importlib.util.find_spec("triton") is None:
            return False
        return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"

    def __getattr__(self, op: str) -> Any:
        module = _OP_MODULES.get(op)
        if module is None:
            raise AttributeError(f"TRITON_OPS has no op {op!r}; ops: {sorted(_OP_MODULES)}")
        return getattr(importlib.import_module(f"sae_fast.kernels.{module}"), op)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_OP_MODULES))


TRITON_OPS = TritonOps()
