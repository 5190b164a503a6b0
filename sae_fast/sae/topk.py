"""TopK SAE (Gao et al., 2024): exactly the k largest positive pre-activations of every token."""

from __future__ import annotations

from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae.k_sparse import KSparseSAE


class TopKSAE(KSparseSAE):
    """``TopKSAE(d_in, d_sae, k)``: per-token top-k in training and inference alike."""

    architecture = "topk"

    def _selection(self, n_tokens: int) -> SelectionRule:
        return SelectionRule("topk", self.k)
