"""Fig. 14: MSE of both SAEs on tokens where novel latents of the larger SAE are active vs inactive.

    python examples/stitching_fig14_novel_latent_mse.py --small S --large L --cache CACHE --out out/
"""

import argparse

from sae_fast.commands.inputs import ACTIVATIONS_HELP, load_activations
from sae_fast.stitching import novel_latent_mse
from sae_fast.stitching.figures import load_sae, plot_novel_latent_mse
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
    result = novel_latent_mse(small, large, load_activations(a.activations, a.max_tokens), a.threshold)
    labels = (f"SAE-{small.W_dec.shape[0]}", f"SAE-{large.W_dec.shape[0]}")
    print(*plot_novel_latent_mse(result, a.out, labels=labels, meta=vars(a)))


if __name__ == "__main__":
    main()
