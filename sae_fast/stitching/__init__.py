"""SAE stitching (paper section 4): novel vs reconstruction latents, swap groups, stitched SAEs,
the interpolation path between two SAE sizes, and the analyses behind Figs. 4, 5, 10, 11, 14, 16, 19."""

from sae_fast.kernels.union_find import connected_components
from sae_fast.stitching.classify import LatentClassification, classify_latents, reconstruction_fraction
from sae_fast.stitching.config import GEMMA_SCOPE_THRESHOLD, GPT2_THRESHOLD, StitchingConfig, as_stitching_config
from sae_fast.stitching.encoded import EncodedEvalSet, LatentColumns, encode_eval_set, encode_sparse_batched
from sae_fast.stitching.evaluation import ReconstructionStats, reconstruction_stats
from sae_fast.stitching.groups import SwapGroup, SwapGroups, find_swap_groups
from sae_fast.stitching.incremental import IncrementalStitchedError
from sae_fast.stitching.interpolation import InterpolationPath, interpolation_path
from sae_fast.stitching.stitched_sae import StitchedSAE

__all__ = [
    "EncodedEvalSet", "GEMMA_SCOPE_THRESHOLD", "GPT2_THRESHOLD", "IncrementalStitchedError",
    "InterpolationPath", "LatentClassification", "LatentColumns", "ReconstructionStats", "StitchedSAE",
    "StitchingConfig", "SwapGroup", "SwapGroups", "as_stitching_config", "classify_latents", "connected_components",
    "encode_eval_set", "encode_sparse_batched", "find_swap_groups", "interpolation_path",
    "reconstruction_fraction", "reconstruction_stats",
]

from sae_fast.stitching.activation_similarity import (  # noqa: E402
    ActivationDecoderSimilarity, activation_vs_decoder_similarity, r_squared, sparse_column_cosines,
)
from sae_fast.stitching.histogram import (  # noqa: E402
    MaxCosineHistogram, ReconstructionFractionMatrix, max_cosine_histogram, reconstruction_fraction_matrix,
)
from sae_fast.stitching.novel_activity import NovelLatentMSE, novel_latent_mse  # noqa: E402
from sae_fast.stitching.roc import RocCurve, novelty_roc, roc_curve  # noqa: E402
from sae_fast.stitching.single_latent import SingleLatentEffects, single_latent_insertion_effects  # noqa: E402

__all__ += [
    "ActivationDecoderSimilarity", "MaxCosineHistogram", "NovelLatentMSE", "ReconstructionFractionMatrix",
    "RocCurve", "SingleLatentEffects", "activation_vs_decoder_similarity", "max_cosine_histogram",
    "novel_latent_mse", "novelty_roc", "r_squared", "reconstruction_fraction_matrix", "roc_curve",
    "single_latent_insertion_effects", "sparse_column_cosines",
]
