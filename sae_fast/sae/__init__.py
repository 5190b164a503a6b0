"""SAE modules: one base class, five architectures."""

from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.batch_topk import BatchTopKSAE
from sae_fast.sae.config import SAEConfig, SAEMetadata
from sae_fast.sae.jumprelu import JumpReLUSAE
from sae_fast.sae.k_sparse import KSparseSAE
from sae_fast.sae.matryoshka import MatryoshkaBatchTopKSAE
from sae_fast.sae.output import TrainingOutput
from sae_fast.sae.relu import ReLUSAE
from sae_fast.sae.topk import TopKSAE

__all__ = [
    "SparseAutoencoder", "KSparseSAE", "BatchTopKSAE", "MatryoshkaBatchTopKSAE", "TopKSAE", "JumpReLUSAE", "ReLUSAE",
    "TrainingOutput", "SAEConfig", "SAEMetadata",
]
