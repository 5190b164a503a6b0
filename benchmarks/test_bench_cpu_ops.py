"""C++ CPU ops against the dense torch path peers use, at CPU-scaled SAE sizes.

- BatchTopK selection: ``sae_fast._C`` (O(n * d_sae) radix select, CSR out) vs ``torch.topk`` on
  the flattened batch followed by the scatter into dense codes (how dense BatchTopK
  implementations build their codes).
- TopK selection: per-row C++ select vs ``torch.topk(dim=1)`` + scatter.
- Decode: C++ ``sparse_decode`` of the kept entries vs ``codes_dense @ W_dec``.
- Aux selection: the top-512 of each token among the dead latents. Peers zero the live latents
  of the dense matrix and run ``torch.topk(dim=1)`` + scatter; C++ ``subset_topk_select`` reads
  the dead columns in place.

Run: ``make bench`` or ``.venv/bin/python -m pytest benchmarks/test_bench_cpu_ops.py -q``
(``--bench-sizes 1024x3072,...`` for other (tokens x latents) sizes); results go to
``benchmarks/results/local/cpu_ops.{json,md}``, or with ``--update-results`` to ``benchmarks/results/``.
"""

from __future__ import annotations

import pytest
import torch
from dense_peer import dense_batch_topk, dense_topk

from sae_fast.kernels import cpu
from sae_fast.kernels.sparse_decode_reference import sparse_decode as reference_decode

K = 32  # latents per token on average (BatchTopK k)
D_MODEL = 768
SIZES = [(1024, 3072), (2048, 12288), (4096, 24576)]  # (tokens n, d_sae m)
ROUNDS = 3


@pytest.fixture(scope="module", autouse=True)
def _extension_built():
    assert cpu.is_available(), "sae_fast._C is not built: run `make venv`"


_pre_cache: dict[tuple[int, int], torch.Tensor] = {}


def pre_activations(n: int, m: int) -> torch.Tensor:
    """Post-ReLU pre-activations, about half zeros (cached: generating them dominates otherwise)."""
    if (n, m) not in _pre_cache:
        g = torch.Generator().manual_seed(0)
        _pre_cache[(n, m)] = torch.relu(torch.randn(n, m, generator=g))
    return _pre_cache[(n, m)]


def run(benchmark, fn, *args):
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["torch_topk_dense", "cpp_batch_topk_select"])
def test_bench_batch_topk_select(benchmark, record_benchmark, impl, size):
    n, m = size
    pre = pre_activations(n, m)
    benchmark.group = f"batch_topk n={n} m={m}"
    if impl == "torch_topk_dense":
        out = run(benchmark, dense_batch_topk, pre, n * K)
        assert int((out > 0).sum()) == n * K
    else:
        codes = run(benchmark, cpu.batch_topk_select, pre, n * K)
        assert codes.nnz == n * K
    record_benchmark(benchmark, file="cpu_ops", case=f"batch_topk n={n} m={m} k={K}", impl=impl,
                     baseline=impl == "torch_topk_dense", tokens=n, op="batch_topk_select", n=n, m=m, k=K)


@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["torch_topk_dense", "cpp_topk_select"])
def test_bench_topk_select(benchmark, record_benchmark, impl, size):
    n, m = size
    pre = pre_activations(n, m)
    benchmark.group = f"topk n={n} m={m}"
    if impl == "torch_topk_dense":
        out = run(benchmark, dense_topk, pre, K)
        assert int((out > 0).sum()) == n * K
    else:
        codes = run(benchmark, cpu.topk_select, pre, K)
        assert codes.nnz == n * K
    record_benchmark(benchmark, file="cpu_ops", case=f"topk n={n} m={m} k={K}", impl=impl,
                     baseline=impl == "torch_topk_dense", tokens=n, op="topk_select", n=n, m=m, k=K)


@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["torch_dense_matmul", "cpp_sparse_decode"])
def test_bench_decode(benchmark, record_benchmark, impl, size):
    n, m = size
    codes = cpu.batch_topk_select(pre_activations(n, m), n * K)
    W_dec = torch.randn(m, D_MODEL, generator=torch.Generator().manual_seed(1)) / m**0.5
    b_dec = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(2))
    benchmark.group = f"decode n={n} m={m} d={D_MODEL}"
    if impl == "torch_dense_matmul":
        dense = codes.to_dense()
        out = run(benchmark, lambda: dense @ W_dec + b_dec)
    else:
        out = run(benchmark, cpu.sparse_decode, codes, W_dec, b_dec)
    torch.testing.assert_close(out, reference_decode(codes, W_dec, b_dec), rtol=1e-4, atol=1e-4)
    record_benchmark(benchmark, file="cpu_ops", case=f"decode n={n} m={m} d={D_MODEL} k={K}", impl=impl,
                     baseline=impl == "torch_dense_matmul", tokens=n, op="sparse_decode", n=n, m=m,
                     d=D_MODEL, k=K)


AUX_K = 512
DEAD_FRACTIONS = (0.05, 0.2)


def dense_dead_topk(pre: torch.Tensor, dead: torch.Tensor, k: int) -> torch.Tensor:
    return dense_topk(pre * dead, k)


@pytest.mark.sizes(SIZES[-1:])
@pytest.mark.parametrize("dead_fraction", DEAD_FRACTIONS, ids=[f"dead{f}" for f in DEAD_FRACTIONS])
@pytest.mark.parametrize("impl", ["torch_masked_topk_dense", "cpp_subset_topk_select"])
def test_bench_aux_select(benchmark, record_benchmark, impl, dead_fraction, size):
    n, m = size
    aux_k = min(AUX_K, int(m * dead_fraction))  # small --bench-sizes have fewer dead latents than AUX_K
    pre = pre_activations(n, m)
    dead = torch.zeros(m, dtype=torch.bool)
    dead[torch.randperm(m, generator=torch.Generator().manual_seed(3))[: int(m * dead_fraction)]] = True
    latents = dead.nonzero().flatten()
    kept = int((pre[:, dead] > 0).sum(1).clamp(max=aux_k).sum())  # n * aux_k unless a token has fewer positives
    benchmark.group = f"aux select n={n} m={m} dead={dead_fraction}"
    if impl == "torch_masked_topk_dense":
        out = run(benchmark, dense_dead_topk, pre, dead, aux_k)
        assert int((out > 0).sum()) == kept
    else:
        codes = run(benchmark, cpu.subset_topk_select, pre, latents, aux_k)
        assert codes.nnz == kept
    record_benchmark(benchmark, file="cpu_ops", case=f"aux select n={n} m={m} dead={dead_fraction} aux_k={aux_k}",
                     impl=impl, baseline=impl == "torch_masked_topk_dense", tokens=n, op="subset_topk_select",
                     n=n, m=m, aux_k=aux_k, dead_fraction=dead_fraction)
