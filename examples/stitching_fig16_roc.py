"""Fig. 16: ROC/AUC of max decoder cosine as a predictor of whether inserting a latent lowers the MSE.

    python examples/stitching_fig16_roc.py --small S --large L --cache CACHE --out out/
"""

import argparse

from sae_fast.commands.inputs import ACTIVATIONS_HELP, load_activations
from sae_fast.stitching import novelty_roc, single_latent_insertion_effects
from sae_fast.stitching.figures import load_sae, plot_roc
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
    x = load_activations(a.activations, a.max_tokens)
    effects = single_latent_insertion_effects(load_sae(a.small), load_sae(a.large), x, a.threshold)
    print(*plot_roc(novelty_roc(effects), a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
