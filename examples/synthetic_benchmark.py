"""SAEs of growing size and meta-SAEs on synthetic activations with known atoms (paper Fig. 2, sec. 5).

    python examples/synthetic_benchmark.py --out runs/synthetic
writes ``runs/synthetic/synthetic_benchmark.json`` (recovery scores) and ``.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sae_fast.synthetic import (
    CompositionalConfig,
    SyntheticBenchmarkConfig,
    plot_synthetic_benchmark,
    run_synthetic_benchmark,
)
from sae_fast.io.atomic import atomic_write_bytes
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/synthetic", help="output folder")
    parser.add_argument("--d", type=int, default=64, help="input dimension of the synthetic data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128], help="SAE sizes (latents) compared")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2], help="k values compared")
    parser.add_argument("--tokens", type=int, default=150_000, help="training tokens of each SAE")
    parser.add_argument("--meta-epochs", type=int, default=3000, help="meta-SAE training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and SAE initialisation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for d=64)")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out)  # never write into a cache, an SAE folder or another run
    torch.set_num_threads(args.threads)
    config = SyntheticBenchmarkConfig(
        world=CompositionalConfig(d=args.d), sizes=tuple(args.sizes), ks=tuple(args.ks), meta_epochs=args.meta_epochs,
        train={"total_tokens": args.tokens, "seed": args.seed, "progress": True},
    )
    report = run_synthetic_benchmark(config)
    out = Path(args.out)
    atomic_write_bytes(out / "synthetic_benchmark.json", json.dumps(report, indent=1).encode())
    plot_synthetic_benchmark(report, str(out / "synthetic_benchmark.png"))
    for row in report["sae"]:
        print(f"SAE k={row['k']} m={row['d_sae']:4d}: FVE {row['fve']:.3f} L0 {row['mean_l0']:.2f} "
              f"atoms {row['atoms_recovered']}/{row['n_atoms']} family atoms {row['family_atoms_recovered']} "
              f"latents {row['latents']}")
    for row in report["meta"]:
        print(f"meta-SAE of k={row['k']} m={row['of_d_sae']} (b_dec learnt: {row['learn_decoder_bias']}): "
              f"FVE {row['meta_fve']:.3f} atoms {row['atoms_recovered']}/{row['n_atoms']} "
              f"family atoms {row['family_atoms_recovered']}")
    print(f"wrote {out / 'synthetic_benchmark.json'} and .png")


if __name__ == "__main__":
    main()
