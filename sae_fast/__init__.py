"""sae_fast: fast, trustworthy BatchTopK sparse autoencoders, SAE stitching and meta-SAEs."""

from sae_fast.sae import (
    BatchTopKSAE,
    JumpReLUSAE,
    KSparseSAE,
    ReLUSAE,
    SparseAutoencoder,
    TopKSAE,
    TrainingOutput,
)
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.sparse_codes import SparseCodes

__version__ = "0.1.0"

__all__ = [
    "BatchTopKSAE", "TopKSAE", "JumpReLUSAE", "ReLUSAE", "SparseAutoencoder", "KSparseSAE",
    "TrainingOutput", "SparseCodes", "save_pretrained", "load_pretrained",
]
