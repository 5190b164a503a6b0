"""Meta-SAEs (paper section 5): SAEs trained on another SAE's decoder rows, and how to read them.

- :func:`train_meta_sae` / :class:`MetaSAEConfig`: the training workflow (over the ordinary Trainer).
- :class:`MetaDecomposition`: each latent as weighted meta-latents; the latents sharing a meta-latent.
- :func:`compare_with_saes`: max-cosine of meta-latents to SAEs of several sizes (Fig. 6).
- :func:`decoder_substitution`: meta-decoder replaced by nearest SAE latents, encoder retrained (Fig. 23).
- :mod:`sae_fast.meta.explain`: top-activating contexts of latents and meta-latents as HTML/Markdown.
"""

from sae_fast.meta.compare import MaxCosineDistribution, compare_with_saes
from sae_fast.meta.config import MetaSAEConfig
from sae_fast.meta.data import decoder_row_batches, rows_to_decompose
from sae_fast.meta.decompose import Decomposition, MetaDecomposition, encode_rows
from sae_fast.meta.explain import (
    Explainer,
    LatentCard,
    TokenContext,
    TopActivations,
    cache_context_lookup,
    collect_top_activations,
    latent_cards,
    meta_latent_cards,
    write_context_page,
)
from sae_fast.meta.plots import plot_meta_report
from sae_fast.meta.substitute import SubstitutionResult, decoder_substitution, with_frozen_decoder
from sae_fast.meta.train import MetaSAEResult, build_meta_sae, train_meta_sae, trainer_config

__all__ = [
    "MetaSAEConfig", "MetaSAEResult", "train_meta_sae", "build_meta_sae", "trainer_config",
    "rows_to_decompose", "decoder_row_batches", "Decomposition", "MetaDecomposition", "encode_rows",
    "MaxCosineDistribution", "compare_with_saes", "SubstitutionResult", "decoder_substitution",
    "with_frozen_decoder", "Explainer", "LatentCard", "TokenContext", "TopActivations",
    "collect_top_activations", "cache_context_lookup", "plot_meta_report", "latent_cards", "meta_latent_cards", "write_context_page",
]
