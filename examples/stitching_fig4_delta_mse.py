"""Fig. 4: ΔMSE of inserting each latent of a larger SAE into a smaller one vs its max decoder cosine.

    python examples/stitching_fig4_delta_mse.py --small S --large L --cache CACHE --out out/
"""

import argparse

from sae_fast.commands.inputs import ACTIVATIONS_HELP, load_activations
from sae_fast.stitching import single_latent_insertion_effects
from sae_fast.stitching.figures import load_sae, plot_single_latent_effects
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--small", required=True, help="the smaller SAE's folder (save_pretrained / sae-fast train output)")
    p.add_argument("--large", required=True, help="the larger SAE's folder")
    p.add_argument("--activations", "--cache", dest="activations", required=True, help=ACTIVATIONS_HELP)
    p.add_argument("--max-tokens", type=int, default=32768, help="held-out activation rows used at most")
    p.add_argument("--threshold", type=float, default=0.7, help="max decoder cosine below which a large-SAE latent counts as novel")
    p.add_argument("--out", default="outputs/stitching", help="output folder of the figure")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    small, large = load_sae(a.small), load_sae(a.large)
    x = load_activations(a.activations, a.max_tokens)
    result = single_latent_insertion_effects(small, large, x, a.threshold)
    print(*plot_single_latent_effects(result, a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
