"""One Matryoshka BatchTopK training step against BatchTopK of the same size and against the dense peer path.

- ``dense_peer`` (baseline, ``benchmarks/dense_peer.py``): how SAELens-style code trains it: dense encoder,
  ``torch.topk`` over the flattened batch, scatter into dense codes, then each level decoded densely from its
  slice of the codes and added to the previous level's reconstruction, aux loss on dense masks, dense autograd.
- ``sae_fast_matryoshka``: ``MatryoshkaBatchTopKSAE(backend="auto")``: one nested sparse decode
  over the kept codes gives every level; its backward is the two sparse products on (token, level) rows.
- ``sae_fast_batchtopk``: ``BatchTopKSAE`` of the same size: the difference to the Matryoshka row is
  what the nested losses cost.

Same step as ``test_bench_training_step.py`` (forward, aux loss with 20% dead latents, backward,
Adam, decoder renorm). Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m pytest -q
benchmarks/test_bench_matryoshka.py`` (CPU: ~2 min; ``--bench-sizes NxM`` for other sizes). Results:
benchmarks/results/local/matryoshka_step.* (``--update-results``: benchmarks/results/).
"""

from __future__ import annotations

import pytest
import torch
from test_bench_training_step import (
    D_MODEL, DEVICE, _mark_dead, dense_peer_step, measure_step, peer_or_trainer_adam, sae_fast_step,
)

from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE

SIZES = [(4096, 12288)]  # (tokens n, d_sae m)
K = 32
ROUNDS = 3


def nested_widths(m: int) -> list[int]:
    return [m // 8, m // 4, m // 2, m]


def _make_sae(impl: str, m: int) -> BatchTopKSAE:
    kwargs = dict(seed=0, device=DEVICE, dead_tokens_threshold=1_000_000, check_finite=False)
    if impl == "sae_fast_batchtopk":
        sae = BatchTopKSAE(D_MODEL, m, K, **kwargs)
    else:
        sae = MatryoshkaBatchTopKSAE(D_MODEL, m, K, matryoshka_widths=nested_widths(m), **kwargs)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    return sae


@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["dense_peer", "sae_fast_matryoshka", "sae_fast_batchtopk"])
def test_bench_matryoshka_step(benchmark, record_benchmark, impl, size):
    n, m = size
    torch.manual_seed(0)
    sae = _make_sae(impl, m)
    _mark_dead(sae)
    optimizer = peer_or_trainer_adam(impl, sae)
    x = torch.randn(n, D_MODEL, device=DEVICE)
    step = dense_peer_step if impl == "dense_peer" else sae_fast_step
    measure_step(benchmark, record_benchmark, step, sae, optimizer, x, rounds=ROUNDS, file="matryoshka_step",
                 case=f"n={n} m={m} k={K} d={D_MODEL} widths={nested_widths(m)}", impl=impl)
