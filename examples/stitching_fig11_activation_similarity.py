"""Fig. 11: activation cosine vs decoder cosine of each larger-SAE latent and its nearest smaller-SAE latent.

    python examples/stitching_fig11_activation_similarity.py --small S --large L --cache CACHE --out out/
"""

import argparse

from sae_fast.commands.inputs import ACTIVATIONS_HELP, load_activations
from sae_fast.stitching import activation_vs_decoder_similarity
from sae_fast.stitching.figures import load_sae, plot_activation_similarity
from sae_fast.commands.arguments import HelpFormatter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--small", required=True, help="the smaller SAE's folder (save_pretrained / sae-fast train output)")
    p.add_argument("--large", required=True, help="the larger SAE's folder")
    p.add_argument("--activations", "--cache", dest="activations", required=True, help=ACTIVATIONS_HELP)
    p.add_argument("--max-tokens", type=int, default=32768, help="held-out activation rows used at most")
    p.add_argument("--min-decoder-cos", type=float, default=0.5, help="R² is computed above this")
    p.add_argument("--out", default="outputs/stitching", help="output folder of the figure")
    a = p.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(a.out)  # never write into a cache, an SAE folder or another run
    x = load_activations(a.activations, a.max_tokens)
    result = activation_vs_decoder_similarity(load_sae(a.small), load_sae(a.large), x, min_decoder_cos=a.min_decoder_cos)
    print(*plot_activation_similarity(result, a.out, meta=vars(a)))


if __name__ == "__main__":
    main()
