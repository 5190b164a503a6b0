"""``evaluate(sae, activations, config)``: every held-out metric of one SAE in one call."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sized
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_fast.duration import announce_duration
from sae_fast.evaluation.config import EvalConfig
from sae_fast.evaluation.metrics import ReconstructionAccumulator
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.eval_mode import eval_mode


@dataclass
class EvalResult:
    """Metrics of one SAE on held-out data (formulas in :mod:`sae_fast.evaluation.metrics`).

    The CE fields are None unless a model and tokens were given. All losses are mean next-token
    cross-entropies in nats over the same positions (see :mod:`sae_fast.activations.ce_loss`).
    """

    n_tokens: int
    nmse: float
    fraction_variance_explained: float
    normalized_mse: float
    """Mean squared error per token and dimension in the SAE's normalised space (what training minimises)."""
    mean_l0: float
    l0_histogram: list[int]
    """``l0_histogram[j]``: evaluation tokens with exactly ``j`` active latents."""
    n_dead: int
    dead_fraction: float
    """Latents that never fired on the evaluation tokens, over d_sae."""
    d_sae: int
    architecture: str
    ce_clean: float | None = None
    ce_sae: float | None = None
    ce_zero_ablation: float | None = None
    ce_mean_ablation: float | None = None
    ce_degradation: float | None = None
    """``ce_sae - ce_clean``."""
    ce_loss_recovered_zero: float | None = None
    """``(L_zero - L_sae) / (L_zero - L_clean)``."""
    ce_loss_recovered_mean: float | None = None
    """``(L_mean - L_sae) / (L_mean - L_clean)``."""
    ce_sequences: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(activations: Tensor | np.ndarray | Iterable[Tensor], batch_size: int) -> Iterable[Tensor]:
    if isinstance(activations, (Tensor, np.ndarray)):
        if activations.ndim != 2 or activations.shape[0] == 0:
            raise ValueError(f"activations must be [n_tokens, d_in] with n_tokens >= 1, got {tuple(activations.shape)}")
        for start in range(0, activations.shape[0], batch_size):
            chunk = activations[start : start + batch_size]
            yield chunk if isinstance(chunk, Tensor) else torch.from_numpy(np.array(chunk))  # copy: memmaps are read-only
        return
    if isinstance(activations, Iterable):
        yield from activations
        return
    raise TypeError(
        f"activations must be a tensor/array [n_tokens, d_in] or an iterable of such batches, "
        f"got {type(activations).__name__}"
    )


def _batch_count(activations: Tensor | np.ndarray | Iterable[Tensor], batch_size: int) -> int | None:
    """Batches :func:`_batches` will give, for the progress bar; None for an iterator of unknown length."""
    if isinstance(activations, (Tensor, np.ndarray)):
        return -(-activations.shape[0] // batch_size)
    return len(activations) if isinstance(activations, Sized) else None


def _recovered(ablated: float, sae: float, clean: float) -> float:
    denominator = ablated - clean
    return (ablated - sae) / denominator if denominator != 0 else math.nan


REFERENCE_LOSSES = ("ce_clean", "ce_zero_ablation", "ce_mean_ablation")


def _ce_losses(
    sae: SparseAutoencoder, model: Any, tokens: Tensor, hook_name: str, mean: Tensor, first_position: int,
    batch_size: int, progress: bool, reference: dict[str, float] | None,
) -> dict[str, float]:
    from sae_fast.activations.ce_loss import ce_loss_with_replacement, clean_loss, mean_ablation, zero_ablation

    def splice_sae(acts: Tensor) -> Tensor:
        return sae(acts.reshape(-1, acts.shape[-1]).to(sae.device)).reshape(acts.shape).to(acts.dtype)

    variants = {"ce_sae": splice_sae}
    if reference is None:
        variants.update(ce_zero_ablation=zero_ablation, ce_mean_ablation=mean_ablation(mean))
    totals = dict.fromkeys(["ce_clean", *variants], 0.0)
    passes = len(variants) + (reference is None)
    # One tick per sequence and forward pass, so a slow model shows progress within a chunk too.
    bar = tqdm(total=tokens.shape[0] * passes, desc=f"CE loss ({passes} passes per sequence)", unit="seq",
               disable=not progress)
    chunks, timed_from = tokens.split(batch_size), 0.0
    with bar:
        for index, chunk in enumerate(chunks):
            # The expected duration, said once: the second chunk timed (the first carries warm-up).
            if index == 1:
                timed_from = time.perf_counter()
            elif index == 2 and progress:
                announce_duration("CE loss", measured=chunks[1].shape[0] * passes,
                                  elapsed_s=time.perf_counter() - timed_from,
                                  remaining=(tokens.shape[0] - batch_size * 2) * passes, unit="sequence passes")
            weight = chunk.shape[0] / tokens.shape[0]  # equal-length sequences: equal predictions each
            if reference is None:
                totals["ce_clean"] += weight * float(clean_loss(model, chunk, first_position=first_position))
                bar.update(chunk.shape[0])
            for name, replace in variants.items():
                loss = ce_loss_with_replacement(model, chunk, hook_name, replace, first_position=first_position)
                totals[name] += weight * float(loss)
                bar.update(chunk.shape[0])
    if reference is not None:
        totals.update({key: float(reference[key]) for key in REFERENCE_LOSSES})
    return totals


@torch.no_grad()
def evaluate(
    sae: SparseAutoencoder,
    activations: Tensor | np.ndarray | Iterable[Tensor],
    config: EvalConfig | None = None,
    **keywords: Any,
) -> EvalResult:
    """All held-out metrics of ``sae`` in eval mode (BatchTopK selects with its threshold theta).

    Args:
        activations: held-out ``[n_tokens, d_in]`` activations (tensor, numpy array or memmap), or
            an iterable of such batches.
        config: batch sizes, progress, and for the CE losses the model, tokens and hook (see
            :class:`~sae_fast.evaluation.EvalConfig`): clean, with the SAE's reconstruction spliced
            in at ``hook_name`` (positions ``first_position:``), and with zero- and mean-ablation there.
        keywords: EvalConfig fields that replace those of ``config``, a shorthand for one-off calls:
            ``evaluate(sae, x, batch_size=1024)``.

    The SAE's train/eval mode is restored afterwards.
    """
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"sae must be a SparseAutoencoder, got {type(sae).__name__}")
    config = EvalConfig.from_keywords(config, keywords)
    batch_size = config.batch_size
    with eval_mode(sae):
        accumulator = ReconstructionAccumulator(sae)
        total = _batch_count(activations, batch_size)
        for batch in tqdm(_batches(activations, batch_size), desc="evaluate", unit="batch", total=total,
                          disable=not config.progress):
            if not isinstance(batch, Tensor):
                raise TypeError(f"activation batches must be tensors, got {type(batch).__name__}")
            accumulator.add(batch)
        if accumulator.n_tokens == 0:
            raise ValueError("activations held no tokens; pass at least one [n, d_in] batch")
        nmse = accumulator.nmse()
        n_dead = int((~accumulator.fired).sum())
        result = EvalResult(
            n_tokens=accumulator.n_tokens, nmse=nmse, fraction_variance_explained=1.0 - nmse,
            normalized_mse=accumulator.normalized_mse(),
            mean_l0=accumulator.mean_l0(), l0_histogram=accumulator.l0_counts.tolist(), n_dead=n_dead,
            dead_fraction=n_dead / sae.d_sae, d_sae=sae.d_sae, architecture=sae.architecture,
        )
        if config.wants_ce:
            mean = accumulator.mean if config.mean_activation is None else config.mean_activation.double()
            if mean.shape != (sae.d_in,):
                raise ValueError(f"mean_activation must have shape [{sae.d_in}], got {tuple(mean.shape)}")
            reference = None
            reference_losses = config.reference_losses
            if reference_losses is not None:
                source = reference_losses.to_dict() if isinstance(reference_losses, EvalResult) else reference_losses
                missing = [key for key in REFERENCE_LOSSES if source.get(key) is None]
                if missing:
                    raise ValueError(f"reference_losses lacks {missing}; pass an EvalResult computed with CE losses")
                reference = {key: source[key] for key in REFERENCE_LOSSES}
            losses = _ce_losses(sae, config.model, config.tokens, config.hook_name, mean.float(),
                                config.first_position, config.ce_batch_size, config.progress, reference)
            result.ce_clean = losses["ce_clean"]
            result.ce_sae = losses["ce_sae"]
            result.ce_zero_ablation = losses["ce_zero_ablation"]
            result.ce_mean_ablation = losses["ce_mean_ablation"]
            result.ce_degradation = losses["ce_sae"] - losses["ce_clean"]
            result.ce_loss_recovered_zero = _recovered(losses["ce_zero_ablation"], losses["ce_sae"], losses["ce_clean"])
            result.ce_loss_recovered_mean = _recovered(losses["ce_mean_ablation"], losses["ce_sae"], losses["ce_clean"])
            result.ce_sequences = int(config.tokens.shape[0])
        return result
