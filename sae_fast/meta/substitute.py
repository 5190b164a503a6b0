"""Fig. 23: swap each meta-latent's decoder direction for its nearest latent in a trained SAE.

If meta-latents are (close to) the latents of an SAE of similar size, a meta-SAE whose decoder is
*replaced* by those SAE latents and whose encoder alone is retrained should reconstruct the rows
almost as well as the original. Two controls make the change interpretable: the original decoder
with its encoder retrained by the same procedure (isolating the cost of retraining), and random
unit directions (what "no relation" looks like).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_fast.evaluation import evaluate
from sae_fast.meta.config import MetaSAEConfig
from sae_fast.meta.data import decoder_row_batches
from sae_fast.meta.train import trainer_config
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.batch_topk import BatchTopKSAE
from sae_fast.similarity import max_cosine_similarity
from sae_fast.training import Trainer


@dataclass(frozen=True)
class SubstitutionResult:
    """Fractions of variance of the rows explained by each variant of the meta-SAE."""

    fve_original: float
    """The meta-SAE as trained."""
    fve_original_retrained: float
    """Its own decoder frozen, encoder retrained from scratch: the reference for the two below."""
    fve_substituted: float
    """Decoder rows replaced by their nearest reference-SAE latents, encoder retrained."""
    fve_random: float
    """Decoder rows replaced by random unit directions, encoder retrained."""
    nearest_cos: Tensor
    """[d_meta] cosine of each meta-latent to the reference latent that replaced it."""
    distinct_substitutes: int
    """How many different reference latents were used (several meta-latents may share one)."""

    def summary(self) -> dict:
        return {
            "fve_original": self.fve_original,
            "fve_original_retrained": self.fve_original_retrained,
            "fve_substituted": self.fve_substituted,
            "fve_random": self.fve_random,
            "change_substituted_vs_retrained": self.fve_substituted - self.fve_original_retrained,
            "change_random_vs_retrained": self.fve_random - self.fve_original_retrained,
            "mean_nearest_cos": float(self.nearest_cos.mean()),
            "median_nearest_cos": float(self.nearest_cos.median()),
            "distinct_substitutes": self.distinct_substitutes,
            "d_meta": int(self.nearest_cos.numel()),
        }


def with_frozen_decoder(meta_sae: BatchTopKSAE, directions: Tensor) -> BatchTopKSAE:
    """A copy of ``meta_sae`` with decoder rows ``directions`` (unit-normed) and ``b_dec`` frozen.

    The encoder restarts from the tied initialisation ``W_enc = W_dec.T`` (as a fresh SAE would),
    ``b_enc`` from zero, and theta is re-estimated by the next training run.
    """
    if directions.shape != meta_sae.W_dec.shape:
        raise ValueError(f"directions must have shape {tuple(meta_sae.W_dec.shape)}, got {tuple(directions.shape)}")
    config = {**meta_sae.config_dict(), "backend": meta_sae.backend}  # config_dict leaves the backend out
    copy = SparseAutoencoder.from_config_dict(config, device=meta_sae.device)
    copy.load_state_dict(meta_sae.state_dict())
    with torch.no_grad():
        unit = directions.to(copy.W_dec) / directions.norm(dim=1, keepdim=True).clamp_min(1e-12).to(copy.W_dec)
        copy.W_dec.copy_(unit)
        copy.W_enc.copy_(unit.t())
        copy.b_enc.zero_()
        copy.threshold.zero_()
        copy.threshold_num_batches.zero_()
        copy.threshold_frozen.fill_(False)
        copy.tokens_since_fired.zero_()
    copy.W_dec.requires_grad_(False)
    copy.b_dec.requires_grad_(False)
    return copy


def _retrain_encoder(sae: BatchTopKSAE, rows: Tensor, config: MetaSAEConfig, epochs: int, seed: int) -> float:
    batches = decoder_row_batches(rows, config.train.batch_size, epochs, seed)
    settings = trainer_config(config, rows.shape[0], init_b_dec_from_data=False, checkpoint_dir=None,
                              resume=False, log_jsonl=None)
    Trainer({"encoder_only": sae}, settings).train(batches)
    return evaluate(sae, rows.to(sae.device), batch_size=8192).fraction_variance_explained


def decoder_substitution(
    meta_sae: BatchTopKSAE, rows: Tensor, reference: SparseAutoencoder | Tensor, config: MetaSAEConfig,
    retrain_epochs: int | None = None, seed: int = 0,
) -> SubstitutionResult:
    """Run the three encoder-only retrainings and report their fractions of variance explained.

    Args:
        meta_sae: a trained meta-SAE; ``rows`` the decoder rows it was trained on.
        reference: an SAE (or its ``W_dec``) trained directly on activations, ideally of about
            the meta-SAE's size.
        config: the meta-SAE's config (optimiser, batch size, device).
        retrain_epochs: epochs of each encoder retraining (default: ``config.epochs``).
        seed: seeds the random directions.
    """
    if not isinstance(meta_sae, BatchTopKSAE):
        raise TypeError(f"meta_sae must be a BatchTopKSAE, got {type(meta_sae).__name__}")
    reference_W = (reference.W_dec if isinstance(reference, SparseAutoencoder) else reference).detach()
    if reference_W.dim() != 2 or reference_W.shape[1] != meta_sae.d_in:
        raise ValueError(f"reference decoder must be [d_sae, {meta_sae.d_in}], got {tuple(reference_W.shape)}")
    epochs = config.epochs if retrain_epochs is None else retrain_epochs
    fve_original = evaluate(meta_sae, rows.to(meta_sae.device), batch_size=8192).fraction_variance_explained
    nearest_cos, nearest = max_cosine_similarity(meta_sae.W_dec.detach(), reference_W.to(meta_sae.device))
    generator = torch.Generator().manual_seed(seed)
    random_directions = torch.randn(meta_sae.W_dec.shape, generator=generator)
    variants = {
        "original": meta_sae.W_dec.detach().clone(),
        "substituted": reference_W.to(meta_sae.device)[nearest],
        "random": random_directions,
    }
    fve = {
        name: _retrain_encoder(with_frozen_decoder(meta_sae, directions), rows, config, epochs, config.train.seed)
        for name, directions in variants.items()
    }
    return SubstitutionResult(
        fve_original=fve_original, fve_original_retrained=fve["original"], fve_substituted=fve["substituted"],
        fve_random=fve["random"], nearest_cos=nearest_cos.cpu(), distinct_substitutes=int(nearest.unique().numel()),
    )
