"""Synthetic activations with known atoms and compositional structure, and scores against that truth."""

from sae_fast.synthetic.generator import (
    CompositionalConfig,
    CompositionalGenerator,
    GroundTruth,
    SyntheticBatch,
    SyntheticStream,
)
from sae_fast.synthetic.benchmark import (
    SyntheticBenchmarkConfig,
    alive_latents,
    plot_synthetic_benchmark,
    run_synthetic_benchmark,
)
from sae_fast.synthetic.scoring import ATOM, COMPOSITION, OTHER, RecoveryScore, score_dictionary

__all__ = [
    "CompositionalConfig", "CompositionalGenerator", "GroundTruth", "SyntheticBatch", "SyntheticStream",
    "SyntheticBenchmarkConfig", "run_synthetic_benchmark", "plot_synthetic_benchmark", "alive_latents",
    "RecoveryScore", "score_dictionary", "ATOM", "COMPOSITION", "OTHER",
]
