"""Fig. 16: how well max decoder cosine predicts whether inserting a latent improves the MSE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_fast.stitching.single_latent import SingleLatentEffects


@dataclass(frozen=True)
class RocCurve:
    """ROC of the rule "novel if max_cos < t" for the positive class "insertion lowers the MSE".

    ``cos_thresholds[i]`` is the t giving ``(fpr[i], tpr[i])``; the first point is (0, 0).
    """

    fpr: Tensor
    tpr: Tensor
    cos_thresholds: Tensor
    auc: float
    n_positive: int
    n_negative: int
    tpr_at_threshold: float
    fpr_at_threshold: float
    threshold: float


def roc_curve(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
    """``(fpr, tpr, score_thresholds, auc)`` for "positive if score >= s", scanning every distinct s.

    Tied scores enter together (one point per distinct score), so the trapezoidal AUC equals the
    Mann-Whitney probability that a positive outscores a negative, ties counting one half.
    """
    if scores.shape != labels.shape or scores.dim() != 1:
        raise ValueError("scores and labels must be 1-D tensors of the same length")
    labels = labels.to(torch.bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs both classes; got {n_pos} positives and {n_neg} negatives")
    order = torch.argsort(scores.double(), descending=True, stable=True)
    s, y = scores.double()[order], labels[order]
    tp, fp = torch.cumsum(y, 0).double(), torch.cumsum(~y, 0).double()
    last_of_value = torch.ones_like(y)
    last_of_value[:-1] = s[1:] != s[:-1]
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), tp[last_of_value] / n_pos])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), fp[last_of_value] / n_neg])
    thresholds = torch.cat([torch.full((1,), float("inf"), dtype=torch.float64), s[last_of_value]])
    auc = float(torch.trapezoid(tpr, fpr))
    return fpr, tpr, thresholds, auc


def novelty_roc(effects: SingleLatentEffects, *, only_firing: bool = True) -> RocCurve:
    """ROC/AUC of ``-max_cos`` as a score for ``delta_mse < 0`` (Fig. 16).

    Latents that never fire on the evaluation set have ``delta_mse == 0`` exactly and say nothing
    about the predictor, so they are left out unless ``only_firing=False``.
    """
    keep = effects.firing_counts > 0 if only_firing else torch.ones_like(effects.firing_counts, dtype=torch.bool)
    max_cos, improves = effects.max_cos[keep].double().cpu(), (effects.delta_mse[keep] < 0).cpu()
    fpr, tpr, thr, auc = roc_curve(-max_cos, improves)
    predicted = max_cos < effects.threshold
    return RocCurve(
        fpr=fpr, tpr=tpr, cos_thresholds=-thr, auc=auc,
        n_positive=int(improves.sum()), n_negative=int((~improves).sum()),
        tpr_at_threshold=float((predicted & improves).sum() / improves.sum()),
        fpr_at_threshold=float((predicted & ~improves).sum() / (~improves).sum()),
        threshold=effects.threshold,
    )
