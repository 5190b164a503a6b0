"""The CPU training step at its floor: sae_fast's full BatchTopK step against the encoder product
alone (the one product no sparse method avoids) and against the real sae-lens 6 training step, all
in the same run.

Case (the issue's): n = 4096 tokens, m = 24576 latents, d = 768, k = 32, 20% of latents dead;
``--bench-sizes NxM`` sets n and m (d and k stay).
- ``encoder_product``: ``x @ W_enc`` alone; the floor every row's "x floor" column divides by.
- ``sae_fast``: ``training_loss`` (aux_k = 512), backward, decoder-gradient projection, Adam as the
  trainer builds it (:func:`~sae_fast.training.optimizer.make_adam`), decoder renormalisation.
- ``sae_lens``: ``SAETrainer._train_step`` of sae-lens 6 on its ``BatchTopKTrainingSAE`` (its own
  forward, dead-latent bookkeeping, backward, grad clipping, Adam and schedulers). Its aux loss takes
  the top d_in / 2 = 384 dead latents per token (sae-lens's fixed rule). It runs only where sae_lens
  is importable: sae-lens pins transformer-lens 3, so it lives in a side venv, and
  ``bash scripts/bench_saelens_step.sh`` runs this file there. The baseline of the speed-up column.

Run: ``bash scripts/bench_saelens_step.sh`` (all three rows, ~4 min on 2 cores), or
``.venv/bin/python -m pytest benchmarks/test_bench_step_floor.py`` (no sae-lens row).
Results: benchmarks/results/local/step_floor.* (``--update-results``: benchmarks/results/).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import record_missing_baseline
from test_bench_training_step import DEAD_FRACTION, _mark_dead, peer_or_trainer_adam, sae_fast_step

from sae_fast import BatchTopKSAE

SIZES = [(4096, 24576)]  # (tokens n, latents m)
D, K = 768, 32
ROUNDS = 5
HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None
NO_SAE_LENS = "sae_lens is not importable here; run scripts/bench_saelens_step.sh"


def _case(n: int, m: int) -> str:
    return f"n={n} m={m} k={K} d={D}, {DEAD_FRACTION:.0%} dead"


def _inputs(n: int) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(0))


def _sae_fast(m: int) -> BatchTopKSAE:
    sae = BatchTopKSAE(D, m, k=K, aux_k=512, seed=0, dead_tokens_threshold=1_000_000, check_finite=False)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    return sae


def _record(benchmark, record_benchmark, size, impl: str, **row) -> None:
    record_benchmark(benchmark, file="step_floor", case=_case(*size), impl=impl, tokens=size[0], **row)


@pytest.mark.sizes(SIZES)
def test_bench_encoder_product(benchmark, record_benchmark, size):
    x, W_enc = _inputs(size[0]), _sae_fast(size[1]).W_enc.detach()
    benchmark.pedantic(torch.matmul, args=(x, W_enc), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, record_benchmark, size, "encoder_product", floor=True)


@pytest.mark.sizes(SIZES)
def test_bench_sae_fast_step(benchmark, record_benchmark, size):
    x, sae = _inputs(size[0]), _sae_fast(size[1])
    optimizer = peer_or_trainer_adam("sae_fast", sae)
    _mark_dead(sae)
    benchmark.pedantic(sae_fast_step, args=(sae, optimizer, x), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert float(sae.training_loss(x).aux_loss.detach()) > 0  # the aux term really ran
    _record(benchmark, record_benchmark, size, "sae_fast", aux_k=512)


@pytest.mark.sizes(SIZES)
def test_bench_sae_lens_step(benchmark, record_benchmark, size):
    n, m = size
    if not HAS_SAE_LENS:
        record_missing_baseline(file="step_floor", case=_case(n, m), reason=NO_SAE_LENS)
        pytest.skip(NO_SAE_LENS)
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(0)
    sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D, d_sae=m, k=K, dtype="float32", device="cpu"))
    config = SAETrainerConfig(total_training_samples=n * 1000, train_batch_size_samples=n, lr=3e-4, lr_end=3e-4,
                              adam_beta2=0.99, device="cpu")
    trainer = SAETrainer(config, sae, data_provider=iter(()))
    x, n_dead = _inputs(n), int(DEAD_FRACTION * m)

    def step():
        trainer.n_forward_passes_since_fired[:n_dead] = config.dead_feature_window + 1
        return trainer._train_step(sae=sae, sae_in=x)

    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert float(step().losses["auxiliary_reconstruction_loss"].detach()) > 0  # its aux term really ran
    _record(benchmark, record_benchmark, size, "sae_lens", baseline=True, aux_k=D // 2)
