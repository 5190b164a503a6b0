"""Does dropping attention-sink rows help an SAE that already normalises every token (layer_norm)?

Trains two BatchTopK SAEs with the paper's recipe from the same seed on one cache: one on every training
row, one without rows whose norm is above ``--max-norm-ratio`` times the median. Both are evaluated on the
held-out split, on all rows and on the non-sink rows, and the JSON result is printed and written.

    python examples/sink_filter_study.py --cache outputs/reproduce/cache --out runs/sink_filter.json
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
    parser.add_argument("--max-norm-ratio", type=float, default=10.0, help="rows above this multiple of the median norm are dropped (attention sinks)")
    parser.add_argument("--d-sae", type=int, default=1536, help="latents of the SAE")
    parser.add_argument("--k", type=int, default=32, help="active latents per token (BatchTopK: batch average)")
    parser.add_argument("--batch-size", type=int, default=512, help="activations per training step")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each SAE")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and SAE initialisation")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out)  # never write into a cache, an SAE folder or another run

    from sae_fast import BatchTopKSAE
    from sae_fast.activations import ActivationCacheReader
    from sae_fast.commands.recalibrate import recalibrate_thetas
    from sae_fast.evaluation import evaluate
    from sae_fast.io.atomic import atomic_write_text
    from sae_fast.training import PAPER, TrainConfig, Trainer

    heldout = ActivationCacheReader(args.cache, split="heldout")
    filtered_heldout = ActivationCacheReader(args.cache, split="heldout", max_norm_ratio=args.max_norm_ratio)
    eval_sets = {"all held-out rows": heldout.rows(), "non-sink held-out rows": torch.from_numpy(
        filtered_heldout.kept_activations().astype("float32"))}
    result = {"command": "python examples/sink_filter_study.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), "runs": {}}
    for label, ratio in (("all rows", None), (f"rows <= {args.max_norm_ratio}x median norm", args.max_norm_ratio)):
        reader = ActivationCacheReader(args.cache, max_norm_ratio=ratio)
        sae = BatchTopKSAE(reader.d_model, args.d_sae, args.k, seed=args.seed,
                           **PAPER.sae_kwargs("batchtopk", args.batch_size))
        config = TrainConfig(batch_size=args.batch_size, total_tokens=args.steps * args.batch_size, seed=args.seed,
                             progress=False, log_every=args.steps)
        start = time.perf_counter()
        Trainer({"sae": sae}, config).train(reader.batches(args.batch_size, seed=args.seed, epochs=None))
        recalibrate_thetas({"sae": sae}, reader.batches(args.batch_size, seed=args.seed + 1, epochs=1), 8)
        run = {"train_seconds": time.perf_counter() - start, "sink_filter": reader.sink_filter_stats()}
        for name, rows in eval_sets.items():
            r = evaluate(sae, rows)
            run[name] = {"nmse": r.nmse, "normalized_mse": r.normalized_mse, "mean_l0": r.mean_l0,
                         "dead_fraction": r.dead_fraction, "n_tokens": r.n_tokens}
        result["runs"][label] = run
        print(label, json.dumps(run, default=str))
    atomic_write_text(args.out, json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
