"""TopK SAE (Gao et al., 2024): exactly the k largest positive pre-activations of every token."""

from __future__ import annotations

from torch import Tensor

from sae_fast.kernels.dispatch import REFERENCE_OPS
from sae_fast.sae.k_sparse import KSparseSAE
from sae_fast.sparse_codes import SparseCodes


class TopKSAE(KSparseSAE):
    """``TopKSAE(d_in, d_sae, k)``: per-token top-k in training and inference alike."""

    architecture = "topk"

    def select(self, pre: Tensor, ops=REFERENCE_OPS) -> SparseCodes:
        return ops.topk_select(pre, self.k)
