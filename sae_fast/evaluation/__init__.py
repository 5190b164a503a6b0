"""Evaluation workflow: reconstruction, sparsity, dead latents and CE degradation on held-out data."""

from sae_fast.evaluation.config import EvalConfig
from sae_fast.evaluation.evaluate import EvalResult, evaluate
from sae_fast.evaluation.metrics import ReconstructionAccumulator

__all__ = ["evaluate", "EvalConfig", "EvalResult", "ReconstructionAccumulator"]
