"""Max decoder cosine: blocked path (and Triton on CUDA) vs a chunked dense torch matmul + max.

The baseline is what one writes by hand: normalise, then for chunks of queries form the full
``[chunk, m0]`` product with torch and take ``max``. Run with
``.venv/bin/python -m pytest benchmarks/test_bench_max_cosine.py -q`` (``--bench-sizes 3072x1536x768``
for other m1 x m0 x d shapes); results go to ``benchmarks/results/local/max_cosine.{json,md}``, or with
``--update-results`` to ``benchmarks/results/`` (atomic writes, see conftest.py).
"""

from __future__ import annotations

import resource

import pytest
import torch

from sae_fast.similarity import max_cosine_similarity, normalize_rows

SHAPES = [(3072, 1536, 768), (12288, 6144, 768), (24576, 12288, 768)]  # (queries m1, keys m0, d)
CUDA_SHAPES = [(24576, 12288, 768), (98304, 49152, 768)]


def _dense_chunked(q, k, chunk=4096):
    qn, kn = normalize_rows(q), normalize_rows(k)
    vals, idxs = [], []
    for s in range(0, qn.shape[0], chunk):
        v, i = (qn[s : s + chunk] @ kn.T).max(dim=1)
        vals.append(v)
        idxs.append(i)
    return torch.cat(vals), torch.cat(idxs)


def _record(record_benchmark, benchmark, impl, shape, **extra):
    m1, m0, d = shape
    record_benchmark(
        benchmark, file="max_cosine", case=f"max cosine m1={m1} m0={m0} d={d}", impl=impl,
        baseline=impl in ("dense_chunked", "cublas_chunked"), m1=m1, m0=m0, d=d,
        gflops=2 * m1 * m0 * d / benchmark.stats.stats.median / 1e9, **extra,
    )  # fmt: skip


@pytest.mark.sizes(SHAPES)
@pytest.mark.parametrize("impl", ["blocked", "dense_chunked"])
def test_bench_cpu(benchmark, record_benchmark, impl, size):
    m1, m0, d = shape = size
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(m1, d, generator=g), torch.randn(m0, d, generator=g)
    fn = (lambda: max_cosine_similarity(q, k, backend="torch")) if impl == "blocked" else (lambda: _dense_chunked(q, k))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    v, i = benchmark.pedantic(fn, rounds=2, iterations=1, warmup_rounds=0)
    rv, ri = _dense_chunked(q, k)
    assert (v - rv).abs().max() < 1e-5 and (i == ri).float().mean() > 0.999
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    _record(record_benchmark, benchmark, impl, shape, peak_rss_growth_mib=rss_growth_mib)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.sizes(CUDA_SHAPES)
@pytest.mark.parametrize("impl", ["triton_tf32", "triton_bf16", "triton_exact", "cublas_chunked"])
def test_bench_cuda(benchmark, record_benchmark, impl, size):
    m1, m0, d = shape = size
    q, k = torch.randn(m1, d, device="cuda"), torch.randn(m0, d, device="cuda")
    if impl == "triton_bf16":
        q, k = q.bfloat16(), k.bfloat16()
    fn = {
        "triton_tf32": lambda: max_cosine_similarity(q, k),
        "triton_bf16": lambda: max_cosine_similarity(q, k),
        "triton_exact": lambda: max_cosine_similarity(q, k, exact=True),
        "cublas_chunked": lambda: _dense_chunked(q, k, chunk=8192),
    }[impl]

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    run()
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    _record(record_benchmark, benchmark, impl, shape)
