"""The CPU training step at its floor: sae_fast's full BatchTopK step against the encoder product
alone (the one product no sparse method avoids) and against the real sae-lens 6 training step, all
in the same run.

Case (the issue's): n = 4096 tokens, m = 24576 latents, d = 768, k = 32, 20% of latents dead.
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
from test_bench_training_step import DEAD_FRACTION, _mark_dead, peer_or_trainer_adam, sae_fast_step

from sae_fast import BatchTopKSAE

N, M, D, K = 4096, 24576, 768, 32
ROUNDS = 5
CASE = f"n={N} m={M} k={K} d={D}, {DEAD_FRACTION:.0%} dead"
HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None


def _inputs() -> torch.Tensor:
    return torch.randn(N, D, generator=torch.Generator().manual_seed(0))


def _sae_fast() -> BatchTopKSAE:
    sae = BatchTopKSAE(D, M, k=K, aux_k=512, seed=0, dead_tokens_threshold=1_000_000, check_finite=False)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    return sae


def _record(benchmark, record_benchmark, impl: str, **row) -> None:
    record_benchmark(benchmark, file="step_floor", case=CASE, impl=impl, tokens=N, **row)


def test_bench_encoder_product(benchmark, record_benchmark):
    x, W_enc = _inputs(), _sae_fast().W_enc.detach()
    benchmark.pedantic(torch.matmul, args=(x, W_enc), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, record_benchmark, "encoder_product", floor=True)


def test_bench_sae_fast_step(benchmark, record_benchmark):
    x, sae = _inputs(), _sae_fast()
    optimizer = peer_or_trainer_adam("sae_fast", sae)
    _mark_dead(sae)
    benchmark.pedantic(sae_fast_step, args=(sae, optimizer, x), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert float(sae.training_loss(x).aux_loss) > 0  # the aux term really ran
    _record(benchmark, record_benchmark, "sae_fast", aux_k=512)


@pytest.mark.skipif(not HAS_SAE_LENS, reason="sae_lens is not importable here; run scripts/bench_saelens_step.sh")
def test_bench_sae_lens_step(benchmark, record_benchmark):
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(0)
    sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D, d_sae=M, k=K, dtype="float32", device="cpu"))
    config = SAETrainerConfig(total_training_samples=N * 1000, train_batch_size_samples=N, lr=3e-4, lr_end=3e-4,
                              adam_beta2=0.99, device="cpu")
    trainer = SAETrainer(config, sae, data_provider=iter(()))
    x, n_dead = _inputs(), int(DEAD_FRACTION * M)

    def step():
        trainer.n_forward_passes_since_fired[:n_dead] = config.dead_feature_window + 1
        return trainer._train_step(sae=sae, sae_in=x)

    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert float(step().losses["auxiliary_reconstruction_loss"]) > 0  # its aux term really ran
    _record(benchmark, record_benchmark, "sae_lens", baseline=True, aux_k=D // 2)
