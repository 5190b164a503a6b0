"""Extract the cache and train the SAE family to each step milestone, snapshotting every SAE there.

Resumable at two grains: the cache finishes where it stopped, and training continues from the
trainer's atomic checkpoint; a milestone whose snapshot is complete (its ``done.json`` exists) is
never trained again.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from sae_fast.io.atomic import atomic_write_text
from sae_fast.reproduce.config import ReproduceConfig, SAESpec
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.training import PAPER, TrainConfig, Trainer
from sae_fast.training.recipes import K_SPARSE_ARCHITECTURES

DONE = "done.json"
CALIBRATION_BATCHES = 8


def extract_cache(config: ReproduceConfig, log) -> Any:
    """The activation cache under ``out/cache`` (extracted, finished, or reused), as a train-split reader."""
    from sae_fast.activations import ActivationCacheReader, ActivationConfig, extract_activations, text_source_from_spec
    from sae_fast.commands.models import load_model_by_name

    directory = Path(config.out) / "cache"
    total = config.train_tokens + config.heldout_tokens
    activation_config = ActivationConfig(
        hook_name=config.hook_name, seq_len=config.seq_len, seed=config.seed, max_tokens=total,
        autocast=config.autocast, heldout_fraction=config.heldout_tokens / total,
    )
    try:
        reader = ActivationCacheReader(directory)
    except (FileNotFoundError, ValueError):
        reader = None  # missing or unfinished: extract_activations creates or finishes it
    if reader is not None:
        m = reader.manifest
        wanted = {"hook_name": config.hook_name, "seq_len": config.seq_len,
                  "requested_sequences": -(-total // (config.seq_len - activation_config.first_position))}
        found = {key: m.get(key) for key in wanted}
        if found != wanted:
            raise ValueError(
                f"{directory} holds another extraction ({found}) than this configuration asks for ({wanted}); "
                "pass another --out, or delete the cache (and the SAEs trained on it) to extract again"
            )
        log(f"cache: reusing {directory} ({reader.num_rows} training rows)")
        return reader
    log(f"cache: loading {config.model} and extracting {total} tokens at {config.hook_name} into {directory}")
    model = load_model_by_name(config.model, "cpu")
    start = time.perf_counter()
    reader = extract_activations(model, text_source_from_spec(config.texts, seed=config.seed), directory,
                                 activation_config, progress=config.progress)
    log(f"cache: {reader.num_rows} training rows in {time.perf_counter() - start:.0f} s")
    return reader


def build_sae(spec: SAESpec, d_in: int, config: ReproduceConfig) -> SparseAutoencoder:
    """A fresh member of the family with the paper's recipe (layer_norm inputs, aux loss)."""
    kwargs = PAPER.sae_kwargs(spec.architecture, config.batch_size)
    kwargs["dead_tokens_threshold"] = config.dead_tokens
    if spec.architecture in K_SPARSE_ARCHITECTURES:
        kwargs["k"] = config.k
    return SparseAutoencoder.from_config_dict(
        {"architecture": spec.architecture, "d_in": d_in, "d_sae": spec.d_sae, "seed": spec.seed, **kwargs,
         **spec.extra}
    )


def snapshot_dir(config: ReproduceConfig, step: int) -> Path:
    return Path(config.out) / "saes" / f"step{step:06d}"


def distinct_study_dir(config: ReproduceConfig) -> Path:
    return Path(config.out) / "saes" / f"distinct{config.distinct_rows}_step{config.milestones[0]:06d}"


def distinct_study_specs(config: ReproduceConfig) -> list[SAESpec]:
    """The SAEs the distinct-tokens study trains again: the ReLU family's small and medium, seed 0."""
    wanted = {f"relu_{config.small}_s0", f"relu_{config.medium}_s0"}
    return [spec for spec in config.family if spec.name in wanted]


def train_family(config: ReproduceConfig, reader: Any, log) -> dict[int, Path]:
    """Train to every milestone (skipping finished ones); returns ``{step: snapshot folder}``."""
    snapshots = {}
    for step in config.milestones:
        snapshots[step] = snapshot_dir(config, step)
        train_snapshot(config, config.family, reader, lambda: reader.batches(config.batch_size, seed=config.seed,
                                                                              epochs=None),
                       step, snapshots[step], "", reader.identity(), log)
    return snapshots


def train_distinct_study(config: ReproduceConfig, reader: Any, log) -> Path | None:
    """The distinct-tokens study's snapshot: its SAEs trained on the first ``distinct_rows`` training rows only,
    to the first milestone, from the same initialisation and batch count as the full family; ``None`` if skipped."""
    import numpy as np

    from sae_fast.activations.shuffled_batches import ShuffledBatches

    if not config.distinct_rows:
        return None
    if config.distinct_rows >= reader.num_rows:
        log(f"distinct-tokens study skipped: distinct_rows={config.distinct_rows} is not fewer than the "
            f"{reader.num_rows} training rows")
        return None
    rows = np.arange(config.distinct_rows)
    folder = distinct_study_dir(config)
    identity = {**reader.identity(), "count": config.distinct_rows}
    train_snapshot(config, distinct_study_specs(config), reader,
                   lambda: ShuffledBatches(reader.activations, config.batch_size, seed=config.seed, epochs=None,
                                           rows=rows),
                   config.milestones[0], folder, f"distinct{config.distinct_rows}", identity, log)
    return folder


def train_snapshot(config: ReproduceConfig, specs: list[SAESpec], reader: Any, batches, step: int, folder: Path,
                   run: str, identity: dict[str, Any], log) -> None:
    """Train ``specs`` on ``batches()`` to ``step`` and snapshot them in ``folder``, unless its ``done.json`` says
    that happened already. ``run`` names the training run ("" for the family): each has its own checkpoint
    (``checkpoints[_run]/``, resumed from) and metrics log (``metrics[_run].jsonl``)."""
    from sae_fast.commands.recalibrate import recalibrate_thetas
    from sae_fast.io import save_pretrained

    out = Path(config.out)
    if (folder / DONE).is_file():
        missing = [spec.name for spec in specs if not (folder / spec.name).is_dir()]
        if missing:
            raise ValueError(
                f"{folder} is a finished snapshot without {missing}: it was written by an earlier version of "
                "`make reproduce` or another configuration; pass another --out (the cache folder can be copied "
                "into it to skip the extraction)"
            )
        log(f"train: step {step} already snapshotted in {folder}")
        return
    saes = {spec.name: build_sae(spec, reader.d_model, config) for spec in specs}
    suffix = f"_{run}" if run else ""
    checkpoints = out / f"checkpoints{suffix}"
    checkpoint = checkpoints / "checkpoint.pt"
    train_config = TrainConfig(
        lr=config.lr, betas=PAPER.train["betas"], batch_size=config.batch_size,
        total_tokens=step * config.batch_size, seed=config.seed, checkpoint_dir=str(checkpoints),
        checkpoint_every=1000, resume=checkpoint.is_file(), log_every=50,
        log_jsonl=str(out / f"metrics{suffix}.jsonl"),
        progress=config.progress, extra={"hook_name": config.hook_name, "recipe": "paper"},
    )
    log(f"train: {len(saes)} SAEs to step {step} (batch {config.batch_size}, "
        f"{'resuming' if train_config.resume else 'fresh'}) for {folder.name}")
    start = time.perf_counter()
    result = Trainer(saes, train_config, data_identity=identity).train(batches())
    seconds = time.perf_counter() - start
    # Snapshots get θ re-estimated on training batches; the training copies keep their running state.
    frozen = {name: copy.deepcopy(sae) for name, sae in saes.items()}
    calibration = reader.batches(config.batch_size, seed=config.seed + step, epochs=1)
    thetas = recalibrate_thetas(frozen, calibration, CALIBRATION_BATCHES)
    metadata = {"hook_name": config.hook_name, "model_name": config.model, "steps": result.steps,
                "train_batch_size": config.batch_size, "recipe": "paper"}
    for name, sae in frozen.items():
        save_pretrained(sae, folder / name, metadata=metadata)
    record = {"step": result.steps, "tokens_seen": result.tokens_seen, "train_seconds": seconds,
              "resumed": train_config.resume, "final_metrics": result.final_metrics,
              "thetas": {name: change.__dict__ for name, change in thetas.items()}}
    atomic_write_text(folder / DONE, json.dumps(record, indent=2, default=float))
    log(f"train: step {result.steps} in {seconds:.0f} s, snapshot in {folder}")
