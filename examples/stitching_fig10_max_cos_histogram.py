"""Fig. 10: histogram of each larger-SAE latent's max decoder cosine to a smaller SAE (no activations needed).

    python examples/stitching_fig10_max_cos_histogram.py --small S --large L --out out/
"""

import argparse

from sae_fast.stitching import max_cosine_histogram
from sae_fast.stitching.figures import load_sae, plot_max_cosine_histogram
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--small", required=True, help="the smaller SAE's folder (save_pretrained / sae-fast train output)")
    p.add_argument("--large", required=True, help="the larger SAE's folder")
    p.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine below which a large-SAE latent counts as novel")
    p.add_argument("--bins", type=int, default=50, help="histogram bins")
    p.add_argument("--out", default="outputs/stitching", help="output folder of the figure")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    result = max_cosine_histogram(load_sae(a.small), load_sae(a.large), a.threshold, bins=a.bins)
    print(*plot_max_cosine_histogram(result, a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
