"""Stage ``ceilings``: the two rates every floor in the report is built from, measured on this device.

- bandwidth: a device-to-device copy of a large buffer, counting bytes read plus bytes written;
- matrix rate: a square product in bf16, in TF32 (fp32 inputs with TF32 allowed) and in IEEE fp32,
  on random data (zeros run faster and would flatter the floor).
"""

from __future__ import annotations

import torch

from gpu_check.config import CheckConfig
from gpu_check.timing import median_seconds, tf32_products

NEEDS_S = 15.0


def copy_bandwidth(device: str, numel: int, warmup: int, reps: int) -> float:
    """Bytes per second moved by ``dst.copy_(src)`` (read + write)."""
    src = torch.rand(numel, device=device)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), device, warmup, reps)
    return 2 * src.numel() * src.element_size() / seconds


def matmul_rate(device: str, size: int, dtype: torch.dtype, tf32: bool, warmup: int, reps: int) -> float:
    """FLOP/s of a ``size``-cube product."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=g).to(dtype)
    b = torch.randn(size, size, device=device, generator=g).to(dtype)
    with tf32_products(tf32):
        seconds = median_seconds(lambda: a @ b, device, warmup, reps)
    return 2 * size**3 / seconds


def run(cfg: CheckConfig, context: dict) -> dict:
    copy_numel, gemm_size = (2**28, 8192) if not cfg.dry else (2**22, 256)  # 1 GiB fp32 buffers on the GPU
    warmup, reps = (3, 10) if not cfg.dry else (1, 3)
    numbers = {
        "copy_bytes_per_s": copy_bandwidth(cfg.device, copy_numel, warmup, reps),
        "bf16_flop_per_s": matmul_rate(cfg.device, gemm_size, torch.bfloat16, False, warmup, reps),
        "tf32_flop_per_s": matmul_rate(cfg.device, gemm_size, torch.float32, True, warmup, reps),
        "fp32_flop_per_s": matmul_rate(cfg.device, gemm_size, torch.float32, False, warmup, reps),
    }
    rates = ", ".join(f"{name} {numbers[f'{name}_flop_per_s'] / 1e12:.3g}" for name in ("bf16", "tf32", "fp32"))
    summary = f"copy {numbers['copy_bytes_per_s'] / 1e12:.3g} TB/s; {rates} TFLOP/s"
    if cfg.dry:
        summary += " (CPU: no TF32 units, so the tf32 row is an fp32 product)"
    return {"numbers": numbers, "summary": summary,
            "params": {"copy_bytes": copy_numel * 4, "matmul_size": gemm_size}}  # fmt: skip
