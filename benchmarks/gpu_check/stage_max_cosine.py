"""Stage ``max_cosine``: the fused Triton max cosine at 98,304 x 49,152 x 768 against the cuBLAS product.

The rate baseline is the product alone: the normalised queries in chunks times the normalised keys'
transpose, through cuBLAS in the same precision (TF32, and bf16), counted as ``2 m1 m0 d`` FLOP. The
hand-written peer (chunked product, then ``max``; the benchmarks' ``_dense_chunked``, which normalises,
and so multiplies, in fp32 whatever the inputs' dtype) is timed too.
Extra memory is the kernel's peak allocation above its inputs: O(m) means no ``[m1, m0]`` matrix.
"""

from __future__ import annotations

import torch
from test_bench_max_cosine import _dense_chunked
from test_bench_training_step import peak_step_memory_bytes

from gpu_check.config import CheckConfig
from gpu_check.targets import speed_target, target
from gpu_check.timing import median_seconds, tf32_products
from sae_fast.kernels.cosine_rows import normalize_rows
from sae_fast.kernels.max_cosine import max_cosine_similarity

NEEDS_S = 20.0
TARGET_RATE_SHARE = 0.7
CHUNK = 8192


def _product_alone(queries: torch.Tensor, keys: torch.Tensor) -> callable:
    # normalize_rows works in fp32; the product runs in the inputs' dtype, as the kernel's tiles do.
    qn, kn_t = normalize_rows(queries).to(queries.dtype), normalize_rows(keys).to(keys.dtype).T
    out = torch.empty(min(CHUNK, qn.shape[0]), kn_t.shape[1], device=qn.device, dtype=qn.dtype)

    def product():
        for start in range(0, qn.shape[0], CHUNK):
            chunk = qn[start : start + CHUNK]
            torch.mm(chunk, kn_t, out=out[: chunk.shape[0]])

    return product


def run(cfg: CheckConfig, context: dict) -> dict:
    m1, m0, d = cfg.max_cosine_shape
    g = torch.Generator(device=cfg.device).manual_seed(5)
    queries = torch.randn(m1, d, device=cfg.device, generator=g)
    keys = torch.randn(m0, d, device=cfg.device, generator=g)
    flop = 2 * m1 * m0 * d
    rows = []
    for precision, dtype in (("tf32", torch.float32), ("bf16", torch.bfloat16)):
        context["budget"].require(NEEDS_S / 2, f"max cosine {precision}")
        q, k = queries.to(dtype), keys.to(dtype)
        with tf32_products(precision == "tf32"):
            impls = {
                "triton": lambda: max_cosine_similarity(q, k, backend="triton"),
                "cublas_product_alone": _product_alone(q, k),
                "cublas_chunked_max": lambda: _dense_chunked(q, k, chunk=CHUNK),
            }
            for impl, fn in impls.items():
                seconds = median_seconds(fn, cfg.device, 1, max(cfg.reps // 2, 2))
                rows.append({"precision": precision, "impl": impl, "median_s": seconds,
                             "tflop_per_s": flop / seconds / 1e12})
        del q, k
    rate = {(row["precision"], row["impl"]): row["tflop_per_s"] for row in rows}
    for row in rows:
        row["share_of_cublas_product"] = row["tflop_per_s"] / rate[(row["precision"], "cublas_product_alone")]
    extra = None if cfg.dry else peak_step_memory_bytes(lambda: max_cosine_similarity(queries, keys, backend="triton"))
    input_bytes = (m1 + m0) * d * queries.element_size()
    o_m_limit = input_bytes + 16 * (m1 + m0)  # normalised copies of both inputs, plus the [m1] outputs
    share = rate[("tf32", "triton")] / rate[("tf32", "cublas_product_alone")]
    targets = [speed_target(
        cfg.dry, f"max cosine {m1}x{m0}x{d} (TF32) vs the cuBLAS product's rate", f">= {TARGET_RATE_SHARE:.0%}",
        f"{share:.0%} ({rate[('tf32', 'triton')]:.3g} vs {rate[('tf32', 'cublas_product_alone')]:.3g} TFLOP/s)",
        share >= TARGET_RATE_SHARE,
    )]  # fmt: skip
    if extra is not None:  # CUDA's allocator counts it; CPU RSS at tiny sizes would not mean anything
        targets.append(target(
            "max cosine extra memory", f"O(m): <= {o_m_limit / 2**20:.0f} MiB (the inputs' size)",
            f"{extra / 2**20:.0f} MiB (an [m1, m0] fp32 matrix: {m1 * m0 * 4 / 2**20:.0f} MiB)", extra <= o_m_limit,
        ))  # fmt: skip
    return {"rows": rows, "targets": targets, "params": {"m1": m1, "m0": m0, "d": d, "chunk": CHUNK}}
