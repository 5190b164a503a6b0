"""One ReLU + L1 training step — forward, L1 term, backward, Adam, decoder renorm — sparse path vs dense.

Baseline ("dense_peer"): ``ReLUSAE(dense_training=True)``, every product dense, as SAELens's standard SAE trains.
Candidate ("sae_fast"): ``ReLUSAE(backend="auto")``: the encoder product dense, everything after it over
the active entries only. The encoder bias is set per latent so that each fires on L0 / m of the tokens
(``L0 = 40``, the paper's Table 2 band), the sparsity a trained L1 SAE has.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_relu_step.py -q`` (CPU: ~2 min); ``--bench-sizes
4096x12288`` times other (tokens x latents) sizes. Results: benchmarks/results/local/relu_step.*
(``--update-results``: benchmarks/results/).
"""

from __future__ import annotations

import pytest
import torch
from test_bench_training_step import DEVICE, measure_step, optimiser_step

from sae_fast import ReLUSAE
from sae_fast.training import TrainConfig
from sae_fast.training.optimizer import make_adam

D_MODEL = 768
L0 = 40
SIZES = [(4096, m) for m in (3072, 6144, 12288, 24576, 49152)] if DEVICE == "cuda" else [(512, 3072), (4096, 12288)]
ROUNDS = 10 if DEVICE == "cuda" else 3


def _make_sae(n_latents: int, x: torch.Tensor, dense: bool) -> ReLUSAE:
    sae = ReLUSAE(D_MODEL, n_latents, l1_coefficient=4e-3, seed=0, device=DEVICE, dense_training=dense,
                  check_finite=False)
    with torch.no_grad():
        pre = (x - sae.b_dec) @ sae.W_enc
        sample = pre[:1024]
        sae.b_enc.copy_(-sample.kthvalue(int((1 - L0 / n_latents) * sample.shape[0]), dim=0).values)
    return sae


@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["dense_peer", "sae_fast"])
def test_bench_relu_step(benchmark, record_benchmark, impl, size):
    n, m = size
    torch.manual_seed(0)
    x = torch.randn(n, D_MODEL, device=DEVICE)
    sae = _make_sae(m, x, impl == "dense_peer")
    optimizer = make_adam(sae, TrainConfig(lr=4e-4, betas=(0.9, 0.99)))
    with torch.no_grad():
        l0 = float(sae.training_loss(x).l0)
    measure_step(benchmark, record_benchmark, optimiser_step, sae, optimizer, x, rounds=ROUNDS, file="relu_step",
                 case=f"n={n} m={m} d={D_MODEL}", impl=impl, l0_at_start=round(l0, 1))
