"""Triton max-cosine kernel: one program per query block, a running max/argmax held in registers.

Each program owns ``BLOCK_M`` normalised queries and sweeps all keys ``BLOCK_N`` at a time,
forming the ``[BLOCK_M, BLOCK_N]`` cosine tile with ``tl.dot`` over ``BLOCK_D`` slices of the
feature dimension (fp32 accumulation) and folding it into the running maximum immediately, so
the cosine matrix never reaches global memory: the output is just ``m1`` values and ``m1`` indices.

Operand precision: ``"bf16"`` (operands rounded to bf16), ``"tf32"`` (fp32 operands, tensor-core
tf32 products) or ``"ieee"`` (exact fp32). The conventions (zero rows have cosine 0 with
everything, ties go to the lowest key index) are those of
:mod:`sae_fast.kernels.max_cosine_reference`: inside a tile the smallest column attaining the
maximum is taken, and a later tile wins only on a strictly larger value.

Runs on CUDA, and on CPU tensors under ``TRITON_INTERPRET=1`` (how the tests exercise it).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sae_fast.kernels.cosine_rows import normalize_rows
from sae_fast.kernels.triton_interpreter import interpreting

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with torch on the platforms we target
    triton = None

Precision = Literal["bf16", "tf32", "ieee"]

if triton is not None:

    @triton.jit
    def _max_cosine_kernel(
        q_ptr,
        k_ptr,
        out_val_ptr,
        out_idx_ptr,
        M1,
        M0,
        D,
        stride_qm,
        stride_km,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        INPUT_PRECISION: tl.constexpr,
        UPCAST_OPERANDS: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < M1
        offs_d = tl.arange(0, BLOCK_D)
        best_val = tl.full([BLOCK_M], float("-inf"), tl.float32)
        best_idx = tl.zeros([BLOCK_M], tl.int64)
        for n0 in range(0, M0, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            col_mask = cols < M0
            acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
            for d0 in range(0, D, BLOCK_D):
                ds = d0 + offs_d
                d_mask = ds < D
                q = tl.load(
                    q_ptr + rows[:, None].to(tl.int64) * stride_qm + ds[None, :],
                    mask=row_mask[:, None] & d_mask[None, :],
                    other=0.0,
                )
                # Keys are loaded transposed ([BLOCK_D, BLOCK_N]) so tl.dot yields q . k^T.
                k = tl.load(
                    k_ptr + cols[None, :].to(tl.int64) * stride_km + ds[:, None],
                    mask=col_mask[None, :] & d_mask[:, None],
                    other=0.0,
                )
                if UPCAST_OPERANDS:
                    q = q.to(tl.float32)
                    k = k.to(tl.float32)
                acc = tl.dot(q, k, acc, input_precision=INPUT_PRECISION)
            acc = tl.where(col_mask[None, :], acc, float("-inf"))
            tile_max = tl.max(acc, axis=1)
            # Smallest column attaining the tile maximum: the lowest-index tie rule.
            candidates = tl.where(acc == tile_max[:, None], cols[None, :].to(tl.int64), M0)
            tile_arg = tl.min(candidates, axis=1)
            better = tile_max > best_val
            best_val = tl.where(better, tile_max, best_val)
            best_idx = tl.where(better, tile_arg, best_idx)
        tl.store(out_val_ptr + rows, best_val, mask=row_mask)
        tl.store(out_idx_ptr + rows, best_idx, mask=row_mask)


def default_precision(queries: Tensor, keys: Tensor, exact: bool) -> Precision:
    """Exact fp32 when asked; bf16 for half-precision inputs; tf32 otherwise."""
    if exact:
        return "ieee"
    if queries.dtype in (torch.bfloat16, torch.float16) or keys.dtype in (torch.bfloat16, torch.float16):
        return "bf16"
    return "tf32"


def max_cosine_similarity(
    queries: Tensor,
    keys: Tensor,
    *,
    precision: Precision = "tf32",
    block_m: int = 64,
    block_n: int = 64,
    block_d: int = 64,
    num_warps: int = 4,
    num_stages: int = 3,
) -> tuple[Tensor, Tensor]:
    """``(max_cos [m1] fp32, argmax [m1] int64)`` via the Triton kernel (inputs already validated)."""
    if triton is None:
        raise RuntimeError("triton is not installed; use backend='torch' (the blocked path) instead")
    if precision not in ("bf16", "tf32", "ieee"):
        raise ValueError(f"precision must be 'bf16', 'tf32' or 'ieee', got {precision!r}")
    for name, b in (("block_m", block_m), ("block_n", block_n), ("block_d", block_d)):
        if b < 16 or b & (b - 1):
            raise ValueError(f"{name} must be a power of two >= 16 (tl.dot tile), got {b}")
    operand_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # Normalising once up front (O((m0 + m1) d)) keeps the inner loop a pure tile product.
    qn = normalize_rows(queries).to(operand_dtype).contiguous()
    kn = normalize_rows(keys).to(operand_dtype).contiguous()
    m1, d = qn.shape
    m0 = kn.shape[0]
    out_val = torch.empty(m1, dtype=torch.float32, device=qn.device)
    out_idx = torch.empty(m1, dtype=torch.int64, device=qn.device)
    if m1 == 0:
        return out_val, out_idx
    grid = (triton.cdiv(m1, block_m),)
    _max_cosine_kernel[grid](
        qn,
        kn,
        out_val,
        out_idx,
        m1,
        m0,
        d,
        qn.stride(0),
        kn.stride(0),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        INPUT_PRECISION="ieee" if precision == "bf16" else precision,
        # Triton's interpreter multiplies bf16 dot operands as raw 16-bit integers (garbage). A
        # bf16 x bf16 product is exact in fp32, so upcasting before an fp32 ``tl.dot`` computes
        # exactly what the tensor cores do with fp32 accumulation.
        UPCAST_OPERANDS=precision == "bf16" and interpreting(),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out_val, out_idx
