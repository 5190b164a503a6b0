"""``CPP_OPS``: the C++ ops (:mod:`~sae_fast.kernels.cpu`) and the blocked CPU ``encode_select``;
None when the extension ``sae_fast._C`` is not built."""

from __future__ import annotations

from sae_fast.kernels import cpu, encode_select_cpu
from sae_fast.kernels.ops import KernelOps

# encode_select_cpu first: it defines encode_select, which the C++ wrappers in cpu do not.
CPP_OPS: KernelOps | None = KernelOps.collect("cpp", encode_select_cpu, cpu) if cpu.is_available() else None
