"""sae_fast: fast, trustworthy BatchTopK sparse autoencoders, SAE stitching and meta-SAEs."""

# First, before anything loads torch: OpenMP reads its wait policy once, when it is loaded.
from sae_fast import openmp_policy  # noqa: F401  (isort: skip)
from sae_fast.sae import (
    BatchTopKSAE,
    JumpReLUSAE,
    KSparseSAE,
    MatryoshkaBatchTopKSAE,
    ReLUSAE,
    SparseAutoencoder,
    TopKSAE,
    TrainingOutput,
)
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.sparse_codes import SparseCodes

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use, so that `import sae_fast` stays light; the Triton kernel behind it is
    # imported later still, when a CUDA tensor first needs it.
    if name == "max_cosine_similarity":
        from sae_fast.similarity import max_cosine_similarity

        return max_cosine_similarity
    raise AttributeError(f"module 'sae_fast' has no attribute {name!r}")


__all__ = [
    "BatchTopKSAE", "MatryoshkaBatchTopKSAE", "TopKSAE", "JumpReLUSAE", "ReLUSAE", "SparseAutoencoder", "KSparseSAE",
    "TrainingOutput", "SparseCodes", "save_pretrained", "load_pretrained",
    "max_cosine_similarity",
]
