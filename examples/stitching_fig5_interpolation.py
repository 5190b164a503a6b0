"""Fig. 5: interpolate along a chain of SAEs of increasing size (add novel latents, then swap groups).

    python examples/stitching_fig5_interpolation.py --saes S768 S1536 S3072 --cache CACHE --out out/
"""

import argparse

from sae_fast.commands.inputs import ACTIVATIONS_HELP, load_activations
from sae_fast.stitching import StitchingConfig, interpolation_path
from sae_fast.stitching.figures import load_sae, plot_interpolation
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--saes", nargs="+", required=True, help="SAE paths, smallest first")
    p.add_argument("--activations", "--cache", dest="activations", required=True, help=ACTIVATIONS_HELP)
    p.add_argument("--max-tokens", type=int, default=32768, help="held-out activation rows used at most")
    p.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine below which a large-SAE latent counts as novel")
    p.add_argument("--novel-order", default="index", choices=["index", "random", "max_cos"], help="order in which novel latents are added along the path")
    p.add_argument("--remove-unmatched-small", action="store_true",
                   help="also remove small-SAE latents that join no group, so the path ends at the large SAE")
    p.add_argument("--out", default="outputs/stitching", help="output folder of the figure")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    if len(a.saes) < 2:
        p.error("--saes needs at least two SAEs")
    config = StitchingConfig(threshold=a.threshold, novel_order=a.novel_order,
                             remove_unmatched_small=a.remove_unmatched_small)
    x = load_activations(a.activations, a.max_tokens)
    saes = [load_sae(s) for s in a.saes]
    paths = {}
    for small, large in zip(saes, saes[1:]):
        paths[f"{small.W_dec.shape[0]} to {large.W_dec.shape[0]}"] = interpolation_path(small, large, x, config)
    print(*plot_interpolation(paths, a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
