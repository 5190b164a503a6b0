"""Triton BatchTopK kernels vs the dense torch path, at the paper's sizes (CUDA only).

Dense path (what SAE libraries do today): ``torch.topk`` over the flattened ``n x d_sae``
pre-activations, scatter back into a dense tensor, decode / backprop with dense matmuls.
Sparse path: radix select to CSR codes, then products that cost O(n * k * d).

Sizes: n = 4096 tokens, d = 768, d_sae in {3072, ..., 98304}, k in {16, 32, 64}, float32.
Run on a GPU machine with::

    .venv/bin/python -m pytest benchmarks/test_bench_triton.py -q

Results go to ``benchmarks/results/triton_kernels.{json,md}`` (atomic writes, see conftest.py),
with the device name, date, command and the speed-up over the dense row of the same case.
Skipped without CUDA (CI has no GPU).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

N_TOKENS, D_IN = 4096, 768
D_SAES = [3072, 6144, 12288, 24576, 49152, 98304]
KS = [16, 32, 64]
DEAD_FRACTION = 0.05  # dead latents in the aux benchmark: at most 1/8, the fused encoder's compact copy


def _record(record_benchmark, benchmark, op: str, impl: str, m: int, k: int) -> None:
    record_benchmark(
        benchmark, file="triton_kernels", case=f"{op} n={N_TOKENS} m={m} k={k}", impl=impl,
        baseline=impl == "dense_torch", tokens=N_TOKENS, op=op, n=N_TOKENS, d_in=D_IN, m=m, k=k,
    )  # fmt: skip


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
def test_bench_batch_topk_select(benchmark, record_benchmark, impl, m, k):
    from sae_fast.kernels.select_triton import batch_topk_select

    x, W_enc, b_enc, b_dec, _ = _sae(m)
    pre = _dense_encode(x, W_enc, b_enc, b_dec)
    k_total = N_TOKENS * k
    fn = (lambda: _dense_batch_topk(pre, k_total)) if impl == "dense_torch" else (lambda: batch_topk_select(pre, k_total))
    out = benchmark.pedantic(_timed(fn), rounds=10, warmup_rounds=2)
    kept = out.count_nonzero() if impl == "dense_torch" else out.nnz
    assert int(kept) == min(k_total, int((pre > 0).sum()))
    _record(record_benchmark, benchmark, "batch_topk_select", impl, m, k)


@pytest.mark.parametrize("impl", ["dense_torch", "triton_fused", "triton_unfused"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_encode_select(benchmark, record_benchmark, impl, m, k):
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
    _record(record_benchmark, benchmark, "encode_select", impl, m, k)


@pytest.mark.parametrize("impl", ["dense_torch", "triton"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_decode_and_grad(benchmark, record_benchmark, impl, m, k):
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
    _record(record_benchmark, benchmark, "decode+W_dec_grad", impl, m, k)


@pytest.mark.parametrize("impl", ["dense_torch", "triton_fused"])
@pytest.mark.parametrize("m,k", PARAMS)
def test_bench_encode_select_with_aux(benchmark, record_benchmark, impl, m, k):
    """Encode, BatchTopK select and the aux loss's top-512 among the dead latents. Dense: mask
    the live latents of the n x d_sae matrix, then ``torch.topk(dim=1)`` + scatter (peers);
    fused: the encoder's epilogue copies the dead columns, the per-row select runs on those."""
    from sae_fast.kernels.encode_select_triton import encode_select

    x, W_enc, b_enc, b_dec, _ = _sae(m)
    k_total, aux_k = N_TOKENS * k, 512
    dead = torch.zeros(m, dtype=torch.bool, device="cuda")
    dead[torch.randperm(m, device="cuda")[: int(m * DEAD_FRACTION)]] = True
    dead_latents = dead.nonzero().flatten()

    def dense():
        pre = _dense_encode(x, W_enc, b_enc, b_dec)
        codes = _dense_batch_topk(pre, k_total)
        top = (pre * dead).topk(min(aux_k, dead_latents.numel()), dim=1, sorted=False)
        return codes, torch.zeros_like(pre).scatter_(1, top.indices, top.values)

    def fused():
        return encode_select(
            x, W_enc, b_enc, b_dec, k_total=k_total, aux_latents=dead_latents, aux_k=aux_k
        )[1:]

    benchmark.pedantic(_timed(dense if impl == "dense_torch" else fused), rounds=10, warmup_rounds=2)
    _record(record_benchmark, benchmark, "encode_select+aux", impl, m, k)
