"""Triton BatchTopK kernels vs the dense torch path, at the paper's sizes (CUDA only).

Dense path (what SAE libraries do today): ``torch.topk`` over the flattened ``n x d_sae``
pre-activations, scatter back into a dense tensor, decode / backprop with dense matmuls.
Sparse path: radix select to CSR codes, then products that cost O(n * k * d).

Sizes: n = 4096 tokens, d = 768, d_sae in {3072, ..., 98304}, k in {16, 32, 64}, float32.
Run on a GPU machine with::

    .venv/bin/python -m pytest benchmarks/test_bench_triton.py -q

Results go to ``benchmarks/results/triton_kernels.{json,md}`` (atomic writes), with the device
name, date and command. Skipped without CUDA (CI has no GPU).
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest
import torch

from sae_fast.io.atomic import atomic_write_text

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RESULTS = Path(__file__).resolve().parent / "results"
N_TOKENS, D_IN = 4096, 768
D_SAES = [3072, 6144, 12288, 24576, 49152, 98304]
KS = [16, 32, 64]
_rows: list[dict] = []


def _record(op: str, impl: str, m: int, k: int, benchmark) -> None:
    stats = benchmark.stats.stats
    _rows.append({
        "op": op, "impl": impl, "n": N_TOKENS, "d_in": D_IN, "d_sae": m, "k": k,
        "median_ms": stats.median * 1e3, "min_ms": stats.min * 1e3, "rounds": stats.rounds,
    })  # fmt: skip
    header = {
        "device": torch.cuda.get_device_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "pytest", *sys.argv[1:]]),
        "torch": torch.__version__,
    }
    lines = [
        "# Triton BatchTopK kernels vs dense torch",
        "",
        *(f"- {key}: {value}" for key, value in header.items()),
        "",
        "| op | impl | d_sae | k | median ms | min ms |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['op']} | {r['impl']} | {r['d_sae']} | {r['k']} | {r['median_ms']:.3f} | {r['min_ms']:.3f} |"
            for r in _rows
        ),
    ]
    atomic_write_text(RESULTS / "triton_kernels.json", json.dumps({**header, "rows": _rows}, indent=2))
    atomic_write_text(RESULTS / "triton_kernels.md", "\n".join(lines) + "\n")


def _timed(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _sae(m: int, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(N_TOKENS, D_IN, device="cuda", generator=g)
    W_enc = torch.randn(D_IN, m, device="cuda", generator=g) / D_IN**0.5
    b_enc = torch.randn(m, device="cuda", generator=g) * 0.1
    b_dec = torch.randn(D_IN, device="cuda", generator=g) * 0.1
    W_dec = torch.randn(m, D_IN, device="cuda", generator=g) / D_IN**0.5
    return x, W_enc, b_enc, b_dec, W_dec


def _dense_batch_topk(pre: torch.Tensor, k_total: int) -> torch.Tensor:
    flat = pre.flatten()
    values, indices = flat.topk(k_total, sorted=False)
    return torch.zeros_like(flat).scatter_(0, indices, values).view_as(pre)


def _dense_encode(x, W_enc, b_enc, b_dec):
    return torch.relu((x - b_dec) @ W_enc + b_enc)


PARAMS = [pytest.param(m, k, id=f"m{m}-k{k}") for m in D_SAES for k in KS]


@pytest.mark.parametrize("impl", ["dense_torch", "triton"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_batch_topk_select(benchmark, impl, m, k):
    from sae_fast.kernels.select_triton import batch_topk_select

    x, W_enc, b_enc, b_dec, _ = _sae(m)
    pre = _dense_encode(x, W_enc, b_enc, b_dec)
    k_total = N_TOKENS * k
    fn = (lambda: _dense_batch_topk(pre, k_total)) if impl == "dense_torch" else (lambda: batch_topk_select(pre, k_total))
    out = benchmark.pedantic(_timed(fn), rounds=10, warmup_rounds=2)
    kept = out.count_nonzero() if impl == "dense_torch" else out.nnz
    assert int(kept) == min(k_total, int((pre > 0).sum()))
    _record("batch_topk_select", impl, m, k, benchmark)


@pytest.mark.parametrize("impl", ["dense_torch", "triton_fused", "triton_unfused"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_encode_select(benchmark, impl, m, k):
    """Fused = histogram of the top radix digit in the matmul epilogue (which spills registers
    on sm_90 at 128x128 tiles); unfused = plain encoder kernel, then a full radix select."""
    from sae_fast.kernels.encode_select_triton import encode, encode_select
    from sae_fast.kernels.select_triton import batch_topk_select

    x, W_enc, b_enc, b_dec, _ = _sae(m)
    k_total = N_TOKENS * k
    if impl == "dense_torch":
        fn = lambda: _dense_batch_topk(_dense_encode(x, W_enc, b_enc, b_dec), k_total)  # noqa: E731
    elif impl == "triton_fused":
        fn = lambda: encode_select(x, W_enc, b_enc, b_dec, k_total=k_total)  # noqa: E731
    else:
        fn = lambda: batch_topk_select(encode(x, W_enc, b_enc, b_dec), k_total)  # noqa: E731
    benchmark.pedantic(_timed(fn), rounds=10, warmup_rounds=2)
    _record("encode_select", impl, m, k, benchmark)


@pytest.mark.parametrize("impl", ["dense_torch", "triton"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_decode_and_grad(benchmark, impl, m, k):
    """Forward decode plus the W_dec gradient product: the two O(n * d_sae * d) dense matmuls."""
    from sae_fast.kernels.select_triton import batch_topk_select
    from sae_fast.kernels.sparse_products_triton import sparse_decode, sparse_transpose_matmul

    x, W_enc, b_enc, b_dec, W_dec = _sae(m)
    pre = _dense_encode(x, W_enc, b_enc, b_dec)
    codes = batch_topk_select(pre, N_TOKENS * k)
    grad_out = torch.randn(N_TOKENS, D_IN, device="cuda")
    if impl == "dense_torch":
        dense = codes.to_dense()
        fn = lambda: (dense @ W_dec + b_dec, dense.T @ grad_out)  # noqa: E731
    else:
        fn = lambda: (sparse_decode(codes, W_dec, b_dec), sparse_transpose_matmul(codes, grad_out))  # noqa: E731
    x_hat, grad_W = benchmark.pedantic(_timed(fn), rounds=10, warmup_rounds=2)
    dense = codes.to_dense()
    torch.testing.assert_close(x_hat, dense @ W_dec + b_dec, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(grad_W, dense.T @ grad_out, atol=1e-3, rtol=1e-3)
    _record("decode+W_dec_grad", impl, m, k, benchmark)
