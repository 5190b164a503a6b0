"""How fast do stitching statistics converge, per learning rate, at a fixed number of optimiser steps?

Trains BatchTopK SAEs of two sizes with two seeds each (the paper's recipe: layer_norm inputs, aux loss),
once per learning rate, on one cache, and measures on its held-out split at each checkpoint: the novel
fraction (large vs small, max decoder cosine < threshold), the same-size different-seed reconstruction
fraction, the held-out MSE in the normalised space and how far the decoder moved from its initialisation.

    python examples/lr_convergence_study.py --cache outputs/reproduce/cache --out runs/lr_study.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--cache", required=True, help="an activation cache folder (`sae-fast cache`)")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3], help="learning rates compared")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[500, 1500], help="optimiser steps at which the statistics are measured")
    parser.add_argument("--sizes", type=int, nargs=2, default=[768, 1536], help="d_sae of the small and the large SAE")
    parser.add_argument("--k", type=int, default=32, help="active latents per token (BatchTopK: batch average)")
    parser.add_argument("--batch-size", type=int, default=512, help="activations per training step")
    parser.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine below which a large-SAE latent counts as novel")
    parser.add_argument("--eval-tokens", type=int, default=8192, help="held-out rows the statistics are measured on")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out)  # never write into a cache, an SAE folder or another run

    from sae_fast import BatchTopKSAE
    from sae_fast.activations import ActivationCacheReader
    from sae_fast.evaluation import evaluate
    from sae_fast.io.atomic import atomic_write_text
    from sae_fast.stitching import classify_latents, reconstruction_fraction
    from sae_fast.training import PAPER, TrainConfig, Trainer

    reader = ActivationCacheReader(args.cache)
    x = ActivationCacheReader(args.cache, split="heldout").rows(0, args.eval_tokens)
    small, large = args.sizes
    kwargs = PAPER.sae_kwargs("batchtopk", args.batch_size) | {"dead_tokens_threshold": 5 * 4096}
    result = {"command": "python examples/lr_convergence_study.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()),
        "runs": {}}
    for lr in args.lrs:
        saes = {f"{m}_s{s}": BatchTopKSAE(reader.d_model, m, args.k, seed=s, **kwargs) for m in (small, large)
                for s in (0, 1)}
        initial = {name: sae.W_dec.detach().clone() for name, sae in saes.items()}
        config = TrainConfig(lr=lr, batch_size=args.batch_size, total_tokens=None, seed=0, progress=False,
                             log_every=10**9)
        stream = iter(reader.batches(args.batch_size, seed=0, epochs=None))
        done, points, start = 0, {}, time.perf_counter()
        trainer = Trainer(saes, config)
        for checkpoint in args.checkpoints:
            trainer.train(next(stream) for _ in range(checkpoint - done))
            done = checkpoint
            for sae in saes.values():
                sae.eval()
            a, b = saes[f"{small}_s0"], saes[f"{large}_s0"]
            points[checkpoint] = {
                "novel_fraction": classify_latents(a, b, args.threshold).novel_fraction,
                "same_size_reconstruction_fraction_small": reconstruction_fraction(
                    saes[f"{small}_s1"], a, args.threshold),
                "same_size_reconstruction_fraction_large": reconstruction_fraction(
                    saes[f"{large}_s1"], b, args.threshold),
                "heldout_normalized_mse_large": evaluate(b, x).normalized_mse,
                "decoder_cos_to_init_large": float(torch.nn.functional.cosine_similarity(
                    b.W_dec.detach(), initial[f"{large}_s0"], dim=1).median()),
                "seconds": time.perf_counter() - start,
            }
            for sae in saes.values():
                sae.train()
            print(f"lr {lr} step {checkpoint}: " + json.dumps(points[checkpoint]), flush=True)
        result["runs"][str(lr)] = points
    atomic_write_text(args.out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
