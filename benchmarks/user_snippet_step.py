"""The README's "Using the modules" training step as a user's own script runs it; prints JSON timings.

Run by ``test_bench_user_snippet.py`` in fresh interpreters, one per environment, so that each
starts its OpenMP runtime under the settings being compared. ``--torch-first`` imports torch before
sae_fast, as a script that starts with ``import torch`` does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--torch-first", action="store_true", help="import torch before sae_fast")
parser.add_argument("--steps", type=int, default=30, help="timed steps (after 5 warm-up steps)")
parser.add_argument("--size", default="1024x64x512", help="tokens x d_in x d_sae")
args = parser.parse_args()

for name in ("torch", "sae_fast") if args.torch_first else ("sae_fast", "torch"):
    importlib.import_module(name)
import torch  # noqa: E402  (already imported above, in the order asked for)

import sae_fast  # noqa: E402

n, d_in, d_sae = (int(part) for part in args.size.split("x"))
torch.manual_seed(0)
sae = sae_fast.BatchTopKSAE(d_in=d_in, d_sae=d_sae, k=32)
optimizer = torch.optim.Adam(sae.parameters(), lr=3e-4, betas=(0.9, 0.99), fused=True)
x = torch.randn(n, d_in)


def step() -> None:
    out = sae.training_loss(x)
    out.loss.backward()
    sae.remove_parallel_decoder_grad_()
    optimizer.step()
    optimizer.zero_grad()
    sae.after_optimizer_step_()


for _ in range(5):
    step()
times = []
for _ in range(args.steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "mean_s": statistics.mean(times),
                  "stddev_s": statistics.stdev(times), "rounds": len(times), "tokens": n}))
