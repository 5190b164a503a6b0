"""Stage ``selection``: Triton BatchTopK selection against ``torch.topk`` on the flattened batch.

Both pick the ``n * k`` largest of the same post-ReLU pre-activations ``[n, m]``; the baseline is
``torch.topk(pre.reshape(-1), n * k, sorted=False)`` alone (no scatter back into a dense matrix),
the cheapest form of what the peers run. The Triton row also builds the CSR codes.
"""

from __future__ import annotations

import torch

from gpu_check.config import CheckConfig
from gpu_check.targets import speed_target
from gpu_check.grid import grid_cases, run_cases, speedups, target_row
from gpu_check.timing import median_seconds, tf32_products
from sae_fast.kernels import encode_select_reference
from sae_fast.kernels.triton_backend import TRITON_OPS

NEEDS_S = 10.0
TARGET_SPEEDUP = 10.0


def pre_activations(cfg: CheckConfig, m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=cfg.device).manual_seed(seed)
    x = torch.randn(cfg.n_tokens, cfg.d_in, device=cfg.device, generator=g)
    W_enc = torch.randn(cfg.d_in, m, device=cfg.device, generator=g) / cfg.d_in**0.5
    b_enc = torch.full((m,), -0.05, device=cfg.device)
    with tf32_products(cfg.tf32):
        return encode_select_reference.encode(x, W_enc, b_enc, torch.zeros(cfg.d_in, device=cfg.device))


def run(cfg: CheckConfig, context: dict) -> dict:
    def measure(m: int, k: int) -> list[dict]:
        pre, k_total = pre_activations(cfg, m), cfg.n_tokens * k
        kept = TRITON_OPS.batch_topk_select(pre, k_total).nnz
        if kept != min(k_total, int((pre > 0).sum())):
            raise AssertionError(f"Triton kept {kept} entries, expected min({k_total}, positives)")
        impls = {
            "torch_topk_flat": lambda: torch.topk(pre.reshape(-1), k_total, sorted=False),
            "triton": lambda: TRITON_OPS.batch_topk_select(pre, k_total),
        }
        return [{"m": m, "k": k, "impl": impl, "median_s": median_seconds(fn, cfg.device, cfg.warmup, cfg.reps)}
                for impl, fn in impls.items()]  # fmt: skip

    outcome = run_cases(cfg, context["budget"], grid_cases(cfg), measure)
    speedups(outcome["rows"], "torch_topk_flat")
    fast = target_row(outcome["rows"], cfg, "triton")
    m, k = cfg.target_case
    outcome["targets"] = [speed_target(
        cfg.dry, f"BatchTopK selection vs torch.topk on the flattened batch, m={m} k={k}", f">= {TARGET_SPEEDUP:g}x",
        None if fast is None else f"{fast['speedup']:.2f}x", fast is not None and fast["speedup"] >= TARGET_SPEEDUP,
    )]  # fmt: skip
    return outcome
