"""One full BatchTopK training step — forward, aux loss, backward, Adam, decoder renorm — fused vs dense.

Baseline ("dense_peer", ``benchmarks/dense_peer.py``, which the tests share): what SAELens / dictionary_learning
style code does: dense encoder, ``torch.topk`` over the flattened ``n * d_sae`` batch, scatter into dense codes,
dense decode, aux top-k over the dead-masked dense pre-activations, and dense autograd for every gradient.
Candidate ("sae_fast"): ``BatchTopKSAE(backend="auto")``: the C++ ops on CPU, Triton on CUDA; only
the encoder product is dense.

20% of latents are marked dead so the aux term is exercised, as it is in real training.
Peak memory: CUDA max_memory_allocated, or on CPU the process's peak RSS (VmHWM, reset before each
step via /proc/self/clear_refs), minus the RSS before the step.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_training_step.py -q`` (CPU: ~5 min);
``--bench-sizes 1024x3072`` times other (tokens x latents) sizes; ``BENCH_PAPER_SIZES=1`` adds the paper's
k values on a GPU. Results: benchmarks/results/local/training_step.* (``--update-results``: benchmarks/results/).
"""

from __future__ import annotations

import os

import dense_peer
import pytest
import torch

from sae_fast import BatchTopKSAE
from sae_fast.training import TrainConfig
from sae_fast.training.optimizer import make_adam

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
D_MODEL = 768
K = 32
if DEVICE == "cuda":
    SIZES = [(4096, m) for m in (3072, 6144, 12288, 24576, 49152, 98304)]
    K_VALUES = (16, 32, 64) if os.environ.get("BENCH_PAPER_SIZES") else (K,)
    ROUNDS = 10
else:
    SIZES = [(1024, 3072), (4096, 12288), (4096, 24576)]
    K_VALUES = (K,)
    ROUNDS = 3
DEAD_FRACTION = 0.2


def peer_or_trainer_adam(impl: str, sae: BatchTopKSAE) -> torch.optim.Adam:
    """The peers' plain Adam for the dense peer; for sae_fast the Adam its trainer builds (fused)."""
    if impl == "dense_peer":
        return torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.99))
    return make_adam(sae, TrainConfig(lr=3e-4, betas=(0.9, 0.99)))


def _make_sae(n_latents: int, k: int) -> BatchTopKSAE:
    sae = BatchTopKSAE(D_MODEL, n_latents, k=k, seed=0, device=DEVICE, dead_tokens_threshold=1_000_000,
                       check_finite=False)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)  # a realistic share of non-positive pre-activations
    return sae


def _mark_dead(sae: BatchTopKSAE) -> None:
    sae.tokens_since_fired[: int(DEAD_FRACTION * sae.d_sae)] = 10**9


def dense_peer_step(sae: BatchTopKSAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """The peers' dense step (:mod:`dense_peer`), with the same latents kept dead as in ``sae_fast_step``."""
    dense_peer.dense_peer_step(sae, optimizer, x)
    _mark_dead(sae)


def optimiser_step(sae, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    """One sae_fast training step of any SAE, as its trainer takes it."""
    out = sae.training_loss(x)
    out.loss.backward()
    sae.remove_parallel_decoder_grad_()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sae.after_optimizer_step_()


def sae_fast_step(sae: BatchTopKSAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimiser_step(sae, optimizer, x)
    _mark_dead(sae)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def peak_step_memory_bytes(step, *args) -> int | None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(*args)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM (peak RSS) to the current RSS
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    step(*args)
    # The kernel syncs its per-thread RSS counters in batches, so a step that allocates nothing new
    # can read a few KiB below its start: that is no growth, not a negative peak (which printed -0.0).
    return max(0, _rss_kib("VmHWM") - before) * 1024


def _synchronized(step):
    if DEVICE != "cuda":
        return step

    def run(*args):
        step(*args)
        torch.cuda.synchronize()

    return run


@pytest.mark.parametrize("k", K_VALUES, ids=[f"k{k}" for k in K_VALUES])
@pytest.mark.sizes(SIZES)
@pytest.mark.parametrize("impl", ["dense_peer", "sae_fast"])
def test_bench_training_step(benchmark, record_benchmark, impl, size, k):
    n, m = size
    torch.manual_seed(0)
    sae = _make_sae(m, k)
    _mark_dead(sae)
    optimizer = peer_or_trainer_adam(impl, sae)
    x = torch.randn(n, D_MODEL, device=DEVICE)
    step = dense_peer_step if impl == "dense_peer" else sae_fast_step
    measure_step(benchmark, record_benchmark, step, sae, optimizer, x, rounds=ROUNDS, file="training_step",
                 case=f"n={n} m={m} k={k} d={D_MODEL}", impl=impl, n_by_m_buffer_mib=round(n * m * 4 / 2**20, 1))


def measure_step(benchmark, record_benchmark, step, sae, optimizer, x, *, rounds: int, impl: str, **row) -> None:
    """Warm ``step`` up, measure its peak memory, time it, and record the row (``dense_peer`` is the baseline)."""
    step(sae, optimizer, x)  # warm-up: Adam state, kernel compilation
    peak = peak_step_memory_bytes(step, sae, optimizer, x)
    benchmark.pedantic(_synchronized(step), args=(sae, optimizer, x), rounds=rounds, iterations=1)
    record_benchmark(
        benchmark, impl=impl, baseline=impl == "dense_peer", tokens=x.shape[0], device=DEVICE,
        peak_step_memory_mib=None if peak is None else round(peak / 2**20, 1), **row,
    )
