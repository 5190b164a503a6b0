"""Where one CPU BatchTopK training step spends its time, stage by stage (the step_floor case).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/step_stages.py [--steps 6]

Prints the median over steps (the first is a warm-up) of: the encoder + selection op alone
(``encode_select`` with the aux subset, on the same inputs), the forward (``training_loss``), the
backward, the decoder-gradient projection, Adam, and zero_grad + decoder renormalisation, then the
encoder product ``x @ W_enc`` alone. A profiling aid, not a benchmark table: step_floor.md is that.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from sae_fast import BatchTopKSAE
from sae_fast.training import TrainConfig
from sae_fast.training.optimizer import make_adam

N, M, D, K, DEAD_FRACTION = 4096, 24576, 768, 32, 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps to time (the first is a warm-up)")
    steps = parser.parse_args().steps
    torch.manual_seed(0)
    sae = BatchTopKSAE(D, M, k=K, aux_k=512, seed=0, dead_tokens_threshold=1_000_000, check_finite=False)
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)
    optimizer = make_adam(sae, TrainConfig(lr=3e-4, betas=(0.9, 0.99)))
    x, n_dead = torch.randn(N, D), int(DEAD_FRACTION * M)
    times: dict[str, list[float]] = defaultdict(list)

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        times[name].append(time.perf_counter() - start)
        return result

    for _ in range(steps):
        sae.tokens_since_fired[:n_dead] = 10**9
        with torch.no_grad():
            dead = sae.dead_latent_mask().nonzero().flatten()
            rule = sae._selection(N)
            timed("encode_select (alone)", lambda: sae._ops().encode_select(
                x, sae.W_enc, sae.b_enc, sae.b_dec, rule, aux_latents=dead, aux_k=512))  # fmt: skip
        begin = time.perf_counter()
        out = timed("forward", lambda: sae.training_loss(x))
        timed("backward", lambda: out.loss.backward())
        timed("projection", sae.remove_parallel_decoder_grad_)
        timed("adam", optimizer.step)
        timed("zero_grad + renorm", lambda: (optimizer.zero_grad(set_to_none=True), sae.after_optimizer_step_()))
        times["step (without the encode_select alone)"].append(time.perf_counter() - begin)
    W_enc = sae.W_enc.detach()
    for _ in range(steps):
        timed("encoder product x @ W_enc (alone)", lambda: x @ W_enc)
    for name, values in times.items():
        kept = values[1:] if len(values) > 1 else values
        print(f"{name:40s} {statistics.median(kept) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
