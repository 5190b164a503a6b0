"""Stage ``training_step``: the full BatchTopK step against the dense peer path and against the floor.

Both steps are the benchmarks' own (``test_bench_training_step``): forward with the aux loss (20% of
latents kept dead), backward, decoder-gradient projection, Adam, decoder renormalisation. The
sparse step is ``BatchTopKSAE(backend="triton")`` with the trainer's fused Adam; the dense peer is
``benchmarks/dense_peer.py`` with plain Adam, as SAELens-style code trains. The floor is
:func:`gpu_check.floor.step_floor_seconds` at the rates the ``ceilings`` stage measured. Peak memory
above the parameters is measured for both paths at the largest m.
"""

from __future__ import annotations

import torch
from test_bench_training_step import (
    _mark_dead, dense_peer_step, peak_step_memory_bytes, peer_or_trainer_adam, sae_fast_step,
)  # fmt: skip

from gpu_check.config import CheckConfig
from gpu_check.floor import step_floor_seconds
from gpu_check.targets import speed_target
from gpu_check.grid import grid_cases, run_cases, speedups, target_row
from gpu_check.timing import median_seconds, tf32_products
from sae_fast import BatchTopKSAE

NEEDS_S = 20.0
TARGET_SPEEDUP = 6.0
TARGET_TIMES_FLOOR = 1.5
IMPLS = {"dense_peer": dense_peer_step, "sae_fast": sae_fast_step}


def make_sae(cfg: CheckConfig, m: int, k: int, cls=BatchTopKSAE, **kwargs) -> BatchTopKSAE:
    sae = cls(cfg.d_in, m, k=k, aux_k=cfg.aux_k, seed=0, device=cfg.device, backend="triton",
              dead_tokens_threshold=1_000_000, check_finite=False, **kwargs)  # fmt: skip
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    _mark_dead(sae)
    return sae


def time_step(cfg: CheckConfig, impl: str, sae: BatchTopKSAE, with_memory: bool) -> dict:
    """Median step time (and peak step memory) of ``impl`` on fresh random tokens."""
    step = IMPLS[impl]
    optimizer = peer_or_trainer_adam(impl, sae)
    g = torch.Generator(device=cfg.device).manual_seed(1)
    x = torch.randn(cfg.n_tokens, cfg.d_in, device=cfg.device, generator=g)
    with tf32_products(cfg.tf32):
        seconds = median_seconds(lambda: step(sae, optimizer, x), cfg.device, cfg.warmup, cfg.reps)
        peak = peak_step_memory_bytes(step, sae, optimizer, x) if with_memory else None
    return {"median_s": seconds, "tokens_per_s": cfg.n_tokens / seconds,
            "peak_step_mib": None if peak is None else round(peak / 2**20, 1)}  # fmt: skip


def run(cfg: CheckConfig, context: dict) -> dict:
    ceilings = context["results"]["ceilings"]["numbers"]
    rate = ceilings["tf32_flop_per_s" if cfg.tf32 else "fp32_flop_per_s"]
    largest_m = max(cfg.latent_counts)

    def measure(m: int, k: int) -> list[dict]:
        floor = step_floor_seconds(cfg.n_tokens, m, cfg.d_in, rate, ceilings["copy_bytes_per_s"])
        with_memory = m == largest_m and k == cfg.target_case[1]
        rows = []
        for impl in IMPLS:
            sae = make_sae(cfg, m, k)
            rows.append({"m": m, "k": k, "impl": impl, **time_step(cfg, impl, sae, with_memory), **floor})
            del sae
        for row in rows:
            row["times_floor"] = row["median_s"] / row["floor_s"]
        return rows

    outcome = run_cases(cfg, context["budget"], grid_cases(cfg), measure)
    speedups(outcome["rows"], "dense_peer")
    fast = target_row(outcome["rows"], cfg, "sae_fast")
    m, k = cfg.target_case
    case = f"m={m} k={k} n={cfg.n_tokens}"
    outcome["targets"] = [
        speed_target(cfg.dry, f"full step vs dense peer, {case}", f">= {TARGET_SPEEDUP:g}x",
                     None if fast is None else f"{fast['speedup']:.2f}x",
                     fast is not None and fast["speedup"] >= TARGET_SPEEDUP),
        speed_target(cfg.dry, f"full step vs floor, {case}", f"<= {TARGET_TIMES_FLOOR:g}x the floor",
                     None if fast is None else f"{fast['times_floor']:.2f}x ({fast['median_s'] * 1e3:.2f} ms, "
                                               f"floor {fast['floor_s'] * 1e3:.2f} ms)",
                     fast is not None and fast["times_floor"] <= TARGET_TIMES_FLOOR),
    ]  # fmt: skip
    peaks = [f"{row['impl']} {row['peak_step_mib']} MiB" for row in outcome["rows"]
             if row.get("peak_step_mib") is not None]  # fmt: skip
    if peaks:
        outcome["summary"] = f"peak step memory above the parameters at m={largest_m}, k={k}: " + ", ".join(peaks)
    outcome["params"] = {"n": cfg.n_tokens, "d": cfg.d_in, "aux_k": cfg.aux_k, "dead_fraction": cfg.dead_fraction,
                         "tf32": cfg.tf32, "floor_rate": "tf32" if cfg.tf32 else "fp32"}  # fmt: skip
    return outcome
