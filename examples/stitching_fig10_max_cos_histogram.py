"""Fig. 10: histogram of each larger-SAE latent's max decoder cosine to a smaller SAE (no activations needed).

    python examples/stitching_fig10_max_cos_histogram.py --small S --large L --out out/
"""

import argparse

from sae_fast.stitching import max_cosine_histogram
from sae_fast.stitching.figures import load_sae, plot_max_cosine_histogram


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", required=True)
    p.add_argument("--large", required=True)
    p.add_argument("--threshold", type=float, default=0.7)
    p.add_argument("--bins", type=int, default=50)
    p.add_argument("--out", default="outputs/stitching")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    result = max_cosine_histogram(load_sae(a.small), load_sae(a.large), a.threshold, bins=a.bins)
    print(*plot_max_cosine_histogram(result, a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
