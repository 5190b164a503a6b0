"""Fig. 19: fraction of reconstruction latents (max cos >= θ) between every ordered pair of SAEs
(same size with different seeds, or different sizes). No activations needed.

    python examples/stitching_fig19_reconstruction_fraction.py --saes A B C --labels a b c --out out/
"""

import argparse

from sae_fast.stitching import reconstruction_fraction_matrix
from sae_fast.stitching.figures import load_sae, plot_reconstruction_fraction
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--saes", nargs="+", required=True, help="SAE folders compared pairwise")
    p.add_argument("--labels", nargs="+", help="one label per SAE (default: folder names)")
    p.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine below which a large-SAE latent counts as novel")
    p.add_argument("--stem", default="fig19_reconstruction_fraction", help="file name of the figure, without extension")
    p.add_argument("--out", default="outputs/stitching", help="output folder of the figure")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    result = reconstruction_fraction_matrix([load_sae(s) for s in a.saes], a.labels, a.threshold)
    print(*plot_reconstruction_fraction(result, a.out, stem=a.stem, meta=vars(a)))


if __name__ == "__main__":
    main()
