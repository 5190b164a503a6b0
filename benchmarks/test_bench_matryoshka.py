"""One Matryoshka BatchTopK training step against BatchTopK of the same size and against the dense peer path.

- ``dense_peer`` (baseline): how SAELens-style code trains it: dense encoder, ``torch.topk`` over the
  flattened batch, scatter into dense codes, then each level decoded densely from its slice of the
  codes and added to the previous level's reconstruction, aux loss on dense masks, dense autograd.
- ``sae_fast_matryoshka``: ``MatryoshkaBatchTopKSAE(backend="auto")``: one nested sparse decode
  over the kept codes gives every level; its backward is the two sparse products on (token, level) rows.
- ``sae_fast_batchtopk``: ``BatchTopKSAE`` of the same size: the difference to the Matryoshka row is
  what the nested losses cost.

Same step as ``test_bench_training_step.py`` (forward, aux loss with 20% dead latents, backward,
Adam, decoder renorm). Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest -q
benchmarks/test_bench_matryoshka.py`` (CPU: ~2 min). Results: benchmarks/results/matryoshka_step.*
"""

from __future__ import annotations

import pytest
import torch
from test_bench_training_step import (
    D_MODEL,
    DEVICE,
    _mark_dead,
    finish_dense_peer_step,
    measure_step,
    sae_fast_step,
)

from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE

N, M, K = 4096, 12288, 32
WIDTHS = [M // 8, M // 4, M // 2, M]
ROUNDS = 3


def _make_sae(impl: str) -> BatchTopKSAE:
    kwargs = dict(seed=0, device=DEVICE, dead_tokens_threshold=1_000_000, check_finite=False)
    if impl == "sae_fast_batchtopk":
        sae = BatchTopKSAE(D_MODEL, M, K, **kwargs)
    else:
        sae = MatryoshkaBatchTopKSAE(D_MODEL, M, K, matryoshka_widths=WIDTHS, **kwargs)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    return sae


def dense_peer_step(sae: MatryoshkaBatchTopKSAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """The dense path peers use, written as they write it (not sae_fast's code)."""
    n = x.shape[0]
    pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    top = torch.topk(pre.reshape(-1), n * sae.k, sorted=False)
    f = torch.zeros_like(pre).reshape(-1).scatter(0, top.indices, top.values).reshape(pre.shape)
    decoded, start, loss = sae.b_dec, 0, 0.0
    for width in sae.matryoshka_widths:
        decoded = f[:, start:width] @ sae.W_dec[start:width] + decoded
        loss = loss + (decoded - x).pow(2).mean()
        start = width
    finish_dense_peer_step(sae, optimizer, x, pre, f, decoded, loss)


@pytest.mark.parametrize("impl", ["dense_peer", "sae_fast_matryoshka", "sae_fast_batchtopk"])
def test_bench_matryoshka_step(benchmark, record_benchmark, impl):
    torch.manual_seed(0)
    sae = _make_sae(impl)
    _mark_dead(sae)
    optimizer = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.99))
    x = torch.randn(N, D_MODEL, device=DEVICE)
    step = dense_peer_step if impl == "dense_peer" else sae_fast_step
    measure_step(benchmark, record_benchmark, step, sae, optimizer, x, rounds=ROUNDS, file="matryoshka_step",
                 case=f"n={N} m={M} k={K} d={D_MODEL} widths={WIDTHS}", impl=impl)
