"""``sae-fast recalibrate`` and the end of ``sae-fast train``: re-estimate BatchTopK's inference θ.

During training θ is a running mean of each batch's smallest kept activation, so after a short run it
still remembers the early weights, and the eval-mode L0 drifts from k (one k=16 SAE gave 22.1).
Re-estimating θ with the final weights on training batches of the training batch size (θ depends on
``n·k``) brings the eval L0 back to about k; see :meth:`BatchTopKSAE.recalibrate_threshold`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from sae_fast.validation import check_positive_int

TRAIN_BATCH_SIZE_KEY = "train_batch_size"
"""SAE folder metadata: tokens per BatchTopK selection in training (the n of θ's n·k)."""
DEFAULT_BATCHES = 8


@dataclass
class ThetaChange:
    """θ and the eval-mode L0 on the calibration batches, before and after recalibration."""

    old_theta: float
    new_theta: float
    old_l0: float | None  # None: θ was never estimated, so eval mode could not select
    new_l0: float
    k: int
    batches: int
    batch_size: int

    def describe(self) -> str:
        old_l0 = "-" if self.old_l0 is None else f"{self.old_l0:.2f}"
        return (f"θ {self.old_theta:.5g} -> {self.new_theta:.5g}, eval L0 {old_l0} -> {self.new_l0:.2f} "
                f"(k={self.k}; {self.batches} batches of {self.batch_size})")


def _eval_l0(sae: Any, batches: Iterable[Tensor]) -> float:
    from sae_fast.evaluation import evaluate

    return evaluate(sae, batches, batch_size=1).mean_l0  # batch_size is unused for an iterable of batches


def recalibrate_thetas(saes: Mapping[str, Any], batches: Iterable[Tensor], n_batches: int) -> dict[str, ThetaChange]:
    """Re-estimate θ of every BatchTopK SAE in ``saes`` on the first ``n_batches`` of ``batches``
    (training batches of the training batch size); other SAEs are left alone."""
    from sae_fast.sae.batch_topk import BatchTopKSAE

    check_positive_int(n_batches, "the number of calibration batches (n_batches)")
    batches = list(itertools.islice(batches, n_batches))  # few batches, each read three times per SAE
    if not batches:
        raise ValueError("no calibration batch: the activations hold fewer rows than one batch; lower the "
                         "batch size or give more activations")
    changes = {}
    for name, sae in saes.items():
        if not isinstance(sae, BatchTopKSAE):
            continue
        old_theta = float(sae.threshold)
        old_l0 = _eval_l0(sae, batches) if old_theta > 0 else None
        new_theta = sae.recalibrate_threshold(batches)
        changes[name] = ThetaChange(old_theta, new_theta, old_l0, _eval_l0(sae, batches), sae.k, len(batches),
                                    int(batches[0].shape[0]))
    return changes


def cache_calibration_batches(reader: Any, batch_size: int, seed: int) -> Iterable[Tensor]:
    """Shuffled batches of the cache in an order of their own (the training order used ``seed``)."""
    return reader.batches(batch_size, seed=seed + 1, epochs=1)


def cmd_recalibrate(args: argparse.Namespace) -> int:
    from sae_fast.commands.inputs import open_cache
    from sae_fast.io import load_pretrained, save_pretrained
    from sae_fast.io.reading import read_json
    from sae_fast.io.saelens import CONFIG_FILENAME
    from sae_fast.sae.batch_topk import BatchTopKSAE

    from sae_fast.commands.provenance import check_sae_against_cache

    reader = open_cache(args.cache, "train")
    for path in args.sae:  # every SAE before the first is rewritten
        check_sae_against_cache(path, reader.manifest, args.cache, args.allow_other_activations)
    for path in map(Path, args.sae):
        sae = load_pretrained(path, device=args.device)
        if not isinstance(sae, BatchTopKSAE):
            raise ValueError(f"{path} is a {sae.architecture} SAE; only BatchTopK SAEs have a θ to recalibrate")
        metadata = dict(read_json(path / CONFIG_FILENAME).get("metadata") or {})
        batch_size = args.batch_size or metadata.get(TRAIN_BATCH_SIZE_KEY)
        if not batch_size:
            raise ValueError(f"{path} does not record its training batch size; pass --batch-size (tokens per "
                             "BatchTopK selection in training: θ depends on it)")
        if reader.d_model != sae.d_in:
            raise ValueError(f"{path} reconstructs width {sae.d_in} but the cache {args.cache} holds width "
                             f"{reader.d_model}; give the cache the SAE was trained on")
        batches = cache_calibration_batches(reader, int(batch_size), args.seed)
        change = recalibrate_thetas({path.name: sae}, batches, args.batches)[path.name]
        metadata["theta_recalibration"] = {**asdict(change), "cache": str(args.cache)}
        save_pretrained(sae, path, metadata=metadata)  # replaces the folder atomically
        print(f"{path}: {change.describe()}")
    return 0


def recalibrate_after_training(
    saes: Mapping[str, Any], config: Any, *, reader: Any, stream: Iterable[Tensor] | None, world_size: int,
    n_batches: int,
) -> dict[str, ThetaChange]:
    """``sae-fast train``'s last step: θ of its BatchTopK SAEs from fresh training batches of the size each
    BatchTopK selection saw (per rank and micro-batch). A failure only warns: the run's weights matter more."""
    selection = selection_batch_size(config, world_size)
    if reader is not None:
        batches = cache_calibration_batches(reader, selection, config.seed)
    else:  # the live stream goes on past the training tokens: its next batches are unseen training data
        batches = (chunk for batch in stream for chunk in batch.chunk(config.micro_batches))
    try:
        changes = recalibrate_thetas(saes, batches, n_batches)
    except ValueError as error:
        print(f"warning: θ kept from training, not recalibrated ({error}); run `sae-fast recalibrate` on the "
              "saved SAEs", file=sys.stderr)
        return {}
    for name, change in changes.items():
        print(f"  {name}: {change.describe()}")
    return changes


def selection_batch_size(config: Any, world_size: int) -> int:
    """Tokens per BatchTopK selection in training: the batch is split over ranks, then micro-batches."""
    return config.batch_size // (config.micro_batches * world_size)
