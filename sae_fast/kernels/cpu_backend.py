"""``CPP_OPS``: the C++ ops (:mod:`~sae_fast.kernels.cpu`) and the blocked CPU ``encode_select``;
None when the extension ``sae_fast._C`` is not built."""

from __future__ import annotations

from sae_fast.kernels import cpu, encode_select_cpu
from sae_fast.kernels.ops import KernelOps

CPP_OPS: KernelOps | None = (
    KernelOps(
        name="cpp",
        batch_topk_select=cpu.batch_topk_select,
        topk_select=cpu.topk_select,
        subset_topk_select=cpu.subset_topk_select,
        threshold_select=cpu.threshold_select,
        encode_select=encode_select_cpu.encode_select,
        sparse_decode=cpu.sparse_decode,
        nested_sparse_decode=cpu.nested_sparse_decode,
        sparse_row_dots=cpu.sparse_row_dots,
        sparse_transpose_matmul=cpu.sparse_transpose_matmul,
    )
    if cpu.is_available()
    else None
)
