"""One pass over one activation stream trains several SAEs at once (the paper's sweeps).

Each step, for every SAE: ``out = sae.training_loss(x)``; ``out.loss.backward()``;
``sae.remove_parallel_decoder_grad_()``; ``opt.step()``; ``sae.after_optimizer_step_()``;
``zero_grad``. Every SAE has its own Adam. Dead-latent tracking and BatchTopK's theta live in the
modules; with micro-batches or DDP they are merged as documented in
:mod:`sae_fast.training.distributed`.

All SAEs are evaluated and back-propagated before any of them steps, so a non-finite loss or
gradient in one SAE can still be answered with a checkpoint of the last good step for all of
them (the step's buffer updates are rolled back).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_fast.duration import announce_duration
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.normalization import expected_average_scale
from sae_fast.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sae_fast.training.config import TrainConfig
from sae_fast.training.data import ResumableBatches, as_resumable
from sae_fast.training.distributed import (
    DistributedContext,
    StepStatistics,
    average_gradients_,
    global_mean,
)
from sae_fast.training.metrics import MetricsLogger, step_metrics
from sae_fast.training.optimizer import make_adam
from sae_fast.training.resume_settings import apply_optimizer_settings, resume_setting_changes

ANNOUNCE_AFTER_STEPS = 3
"""Steps timed (after the first) before the expected duration of a run is printed."""
CHECKPOINT_FORMAT = "sae_fast.training.checkpoint"
CHECKPOINT_VERSION = 1


class NonFiniteError(RuntimeError):
    """Training met NaN/Inf (in the activations or in an SAE's loss/gradients) and stopped."""

    def __init__(self, message: str, step: int, sae_name: str | None) -> None:
        super().__init__(message)
        self.step = step
        self.sae_name = sae_name


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns."""

    steps: int
    """Optimiser steps taken in total (including steps before a resume)."""
    tokens_seen: int
    """Training tokens consumed (all ranks)."""
    final_metrics: dict[str, dict[str, float]]
    """Per SAE: the metrics of the last logged step (loss, mse, aux_loss, sparsity_loss, l0, nmse, dead_latents)."""
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per SAE: every logged record (``step``, ``tokens`` and the metrics above)."""
    checkpoint_path: Path | None = None
    wall_time_s: float = 0.0
    """Seconds spent in this call (not counting time before a resume)."""
    setting_changes: list[dict[str, Any]] = field(default_factory=list)
    """Optimiser settings a resume changed: ``{"step", "field", "checkpoint", "now"}`` (the new value was
    used from the step after ``step``); see :mod:`~sae_fast.training.resume_settings`."""


class Trainer:
    """``Trainer(saes, config).train(batches)`` (see the module docstring).

    ``data_identity`` describes the batches (e.g. ``ActivationCacheReader.identity()``); checkpoints
    record it and a resume refuses data whose identity differs in any field both name.
    """

    def __init__(
        self, saes: dict[str, SparseAutoencoder], config: TrainConfig, *,
        distributed: DistributedContext | None = None, data_identity: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        config.validate()
        if not isinstance(saes, dict) or not saes:
            raise ValueError("saes must be a non-empty dict {name: SparseAutoencoder}")
        for name, sae in saes.items():
            if not isinstance(name, str) or not name or any(c in name for c in "/\\\n"):
                raise ValueError(f"SAE names must be non-empty strings without slashes/newlines, got {name!r}")
            if not isinstance(sae, SparseAutoencoder):
                raise TypeError(f"saes[{name!r}] must be a SparseAutoencoder, got {type(sae).__name__}")
        d_ins = {name: sae.d_in for name, sae in saes.items()}
        if len(set(d_ins.values())) != 1:
            raise ValueError(f"all SAEs trained on one stream need the same d_in, got {d_ins}")
        self.config = config
        self.data_identity = data_identity
        self.context = distributed or DistributedContext.from_environment()
        if config.batch_size % (config.micro_batches * self.context.world_size):
            raise ValueError(
                f"batch_size={config.batch_size} must be divisible by micro_batches*world_size="
                f"{config.micro_batches * self.context.world_size}"
            )
        self.local_batch_size = config.batch_size // self.context.world_size
        self.d_in = next(iter(d_ins.values()))
        self.device = torch.device(config.device)
        dtype = config.torch_dtype
        self.saes = saes
        for sae in saes.values():
            sae.to(device=self.device)
            if sae.dtype != dtype:
                # Parameters only: buffers keep their dtypes (theta stays float32, counters int64).
                for parameter in sae.parameters():
                    parameter.data = parameter.data.to(dtype)
            self.context.broadcast_module_(sae)
        self.optimizers = {name: make_adam(sae, config) for name, sae in saes.items()}
        self.step = 0
        self.tokens_seen = 0
        self.history: dict[str, list[dict[str, Any]]] = {name: [] for name in saes}
        self.setting_changes: list[dict[str, Any]] = []
        self._data_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, Adam, counters, RNG, data position."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "config": self.config.to_dict(),
            "saes": {
                name: {"config": sae.config_dict(), "state_dict": sae.state_dict()} for name, sae in self.saes.items()
            },
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "data": self._data_state,
            "data_identity": self.data_identity,
            "history": self.history,
            "setting_changes": self.setting_changes,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint_dir/checkpoint.pt`` atomically (main rank only)."""
        path = self.config.checkpoint_path
        if path is None:
            return None
        if self.context.is_main:
            save_checkpoint(path, self.state_dict())
        return path

    def load_checkpoint(self, path: str | Path, stream: ResumableBatches | None = None) -> None:
        """Restore a checkpoint of the same SAEs (names and configs must match)."""
        payload = load_checkpoint(path, map_location=self.device)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a training checkpoint (format={payload.get('format')!r})")
        self._check_data_identity(path, payload.get("data_identity"))
        changes = resume_setting_changes(payload.get("config") or {}, self.config, path)
        saved = payload["saes"]
        if set(saved) != set(self.saes):
            raise CheckpointError(
                f"checkpoint {path} holds SAEs {sorted(saved)} but this run trains {sorted(self.saes)}"
            )
        for name, sae in self.saes.items():
            # Older checkpoints hold the backend, a runtime choice that a resume may change, and
            # predate input normalisation (so they did none).
            saved_config = {key: value for key, value in saved[name]["config"].items() if key != "backend"}
            saved_config.setdefault("normalize_activations", "none")
            if saved_config != sae.config_dict():
                raise CheckpointError(
                    f"checkpoint {path}: SAE {name!r} was saved with config {saved_config} "
                    f"but this run built {sae.config_dict()}"
                )
            sae.load_state_dict(saved[name]["state_dict"])
            self.optimizers[name].load_state_dict(payload["optimizers"][name])
            apply_optimizer_settings(self.optimizers[name], self.config)  # the restored groups hold the old ones
        self.step = int(payload["step"])
        self.setting_changes = [*payload.get("setting_changes", []), *({"step": self.step, **c} for c in changes)]
        self.tokens_seen = int(payload["tokens_seen"])
        self.history = {name: list(payload["history"].get(name, [])) for name in self.saes}
        torch.set_rng_state(payload["rng"]["torch"].cpu())
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng"]["cuda"]])
        self._data_state = payload["data"]
        if stream is not None and payload["data"] is not None:
            stream.load_state_dict(payload["data"])

    def _check_data_identity(self, path: str | Path, saved: dict[str, Any] | None) -> None:
        if saved is None or self.data_identity is None:
            return  # a checkpoint or a run that does not describe its data: nothing to compare
        differing = [k for k in sorted(set(saved) & set(self.data_identity)) if saved[k] != self.data_identity[k]]
        if differing:
            details = "; ".join(f"{k}: checkpoint {saved[k]!r}, now {self.data_identity[k]!r}" for k in differing)
            raise CheckpointError(
                f"checkpoint {path} was trained on different data ({details}); resume with the same "
                "activation cache, split and sink filter, or train into a new output folder"
            )

    # ------------------------------------------------------------------ training
    def _check_batch(self, x: object) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"batches must yield floating-point tensors [{self.local_batch_size}, {self.d_in}], "
                            f"got {type(x).__name__}")
        if x.dim() != 2 or x.shape != (self.local_batch_size, self.d_in):
            raise ValueError(
                f"step {self.step + 1}: expected a batch of shape [{self.local_batch_size}, {self.d_in}] "
                f"(batch_size {self.config.batch_size} / world_size {self.context.world_size}), got "
                f"{tuple(x.shape)}; re-cut the stream with sae_fast.training.fixed_size_batches"
            )
        return x.to(self.device, non_blocking=True)

    def _stop(self, step: int, sae_name: str | None, what: str, stats: dict[str, StepStatistics]) -> None:
        for s in stats.values():
            s.restore()
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        path = self.save_checkpoint()
        where = f"SAE {sae_name!r}" if sae_name else f"the activations (every SAE: {sorted(self.saes)})"
        saved = f"; the last good checkpoint (step {self.step}) is {path}" if path else " (no checkpoint_dir set)"
        raise NonFiniteError(f"NaN/Inf at step {step} in {where}: {what}; training stopped{saved}", step, sae_name)

    @torch.no_grad()
    def _fit_input_statistics(self, chunks: list[Tensor]) -> None:
        """On the first batch of a fresh run: the input scale (expected_average_only_in) and b_dec.

        Both are means over every rank's batch, so all ranks start from identical SAEs.
        """
        for sae in self.saes.values():
            if sae.normalize_activations == "expected_average_only_in" and not float(sae.activation_scale) > 0:
                norms = [chunk.double().norm(dim=-1, keepdim=True) for chunk in chunks]
                sae.activation_scale.fill_(expected_average_scale(float(global_mean(norms, self.context)), sae.d_in))
            if self.config.init_b_dec_from_data:
                normalized = [sae.normalize_inputs(chunk) for chunk in chunks]
                sae.b_dec.copy_(global_mean(normalized, self.context).to(sae.dtype))

    def _train_step(self, x: Tensor, log: bool) -> dict[str, dict[str, float]]:
        step = self.step + 1
        config = self.config
        chunks = list(x.chunk(config.micro_batches)) if config.micro_batches > 1 else [x]
        stats = {name: StepStatistics(sae) for name, sae in self.saes.items()}
        # 0: fine, 1: bad activations, 2+i: bad loss/gradient in SAE i — max-reduced so all ranks agree.
        flag = torch.zeros((), dtype=torch.int64, device=self.device)
        if not bool(torch.isfinite(x).all()):
            flag.fill_(1)
        if step == 1 and not int(self.context.all_reduce(flag.clone(), "max")):
            self._fit_input_statistics(chunks)
        metrics: dict[str, dict[str, float]] = {}
        names = list(self.saes)
        for index, name in enumerate(names):
            if int(flag):
                break
            sae = self.saes[name]
            accumulated: dict[str, float] = {}
            for chunk in chunks:
                stats[name].restore()
                out = sae.training_loss(chunk)
                if not bool(torch.isfinite(out.loss)):
                    flag.fill_(2 + index)
                    break
                out.loss.backward()
                stats[name].collect(chunk.shape[0])
                if log:
                    for key, value in step_metrics(out).items():
                        accumulated[key] = accumulated.get(key, 0.0) + value / len(chunks)
            if not int(flag) and not all(bool(torch.isfinite(p.grad).all()) for p in sae.parameters()
                                         if p.grad is not None):
                flag.fill_(2 + index)
            metrics[name] = accumulated
        self.context.all_reduce(flag, "max")
        code = int(flag)
        if code == 1:
            self._stop(step, None, "the batch of activations contains non-finite values", stats)
        if code >= 2:
            self._stop(step, names[code - 2], "non-finite training loss or gradient", stats)
        for name, sae in self.saes.items():
            average_gradients_(sae, config.micro_batches, self.context)
            stats[name].merge(self.context)
            sae.remove_parallel_decoder_grad_()
            self.optimizers[name].step()
            sae.after_optimizer_step_()
            self.optimizers[name].zero_grad(set_to_none=True)
        if log:
            for name, values in metrics.items():
                if self.context.enabled:
                    # Per-rank batch statistics; the training state was merged already, so its statistics are global.
                    keys = list(values)
                    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
                    self.context.all_reduce(packed)
                    values.update({k: float(v) / self.context.world_size for k, v in zip(keys, packed.tolist())})
                values.update(self.saes[name].training_statistics())
        return metrics

    def _planned_steps(self, stream) -> int | None:
        """The step count this run will reach: the token cap's or the stream's end, whichever comes first.

        The progress bar's total and the final log line use it; ``None`` when neither is known.
        """
        cap = self.config.total_tokens
        ends = [] if cap is None else [math.ceil(cap / self.config.batch_size)]
        try:
            ends.append(self.step + len(stream))  # the batches left (all epochs of a cache)
        except TypeError:  # an endless or unsized stream
            pass
        return min(ends) if ends else None

    def _announce_duration(self, first_step: int, total_steps: int | None) -> None:
        """Say the run's expected length once: steps 2-4 of this run timed (step 1 carries warm-up)."""
        done = self.step - first_step
        if done == 1:
            self._timed_from = time.perf_counter()
        elif done == 1 + ANNOUNCE_AFTER_STEPS and total_steps is not None and self.config.progress \
                and self.context.is_main:
            announce_duration("train SAEs", measured=ANNOUNCE_AFTER_STEPS,
                              elapsed_s=time.perf_counter() - self._timed_from,
                              remaining=total_steps - self.step, unit="steps")

    def train(self, batches: Iterable[Tensor]) -> TrainResult:
        """Train every SAE on ``batches`` until ``total_tokens`` or the end of the stream."""
        config = self.config
        stream = as_resumable(batches)
        start_time = time.perf_counter()
        logger = MetricsLogger(
            config.log_jsonl, tensorboard_dir=config.tensorboard_dir, wandb_project=config.wandb_project,
            run_config=config.to_dict(), enabled=self.context.is_main,
        )
        if config.resume:
            self.load_checkpoint(config.checkpoint_path, stream)
            if self.context.is_main:
                logger.truncate_after(self.step)
        elif self.step == 0:
            torch.manual_seed(config.seed)
        for sae in self.saes.values():
            sae.train()
        self._data_state = stream.state_dict()
        total_steps = self._planned_steps(stream)
        bar = tqdm(total=total_steps, initial=self.step, unit="step", desc="train SAEs",
                   disable=not (config.progress and self.context.is_main), dynamic_ncols=True)
        last: dict[str, dict[str, float]] = {}
        iterator = iter(stream)
        first_step = self.step
        try:
            while config.total_tokens is None or self.tokens_seen < config.total_tokens:
                x = next(iterator, None)
                if x is None:
                    break
                x = self._check_batch(x)
                is_last = total_steps is not None and self.step + 1 >= total_steps
                log = (self.step + 1) % config.log_every == 0 or is_last or self.step == 0
                metrics = self._train_step(x, log)
                self.step += 1
                self.tokens_seen += config.batch_size
                self._announce_duration(first_step, total_steps)
                self._data_state = stream.state_dict()
                if log:
                    records = []
                    for name, values in metrics.items():
                        record = {"step": self.step, "tokens": self.tokens_seen, "sae": name, **values}
                        self.history[name].append(record)
                        records.append(record)
                        last[name] = values
                    logger.log(records)
                    bar.set_postfix_str(" | ".join(
                        f"{n}: loss {v['loss']:.4g} L0 {v['l0']:.1f} NMSE {v['nmse']:.3f}" for n, v in metrics.items()
                    ))
                bar.update(1)
                if self.step % config.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
            logger.close()
        if self.step == 0:
            raise ValueError("the data stream yielded no batches; nothing was trained")
        for name in self.saes:
            if name not in last and self.history[name]:
                last[name] = {k: v for k, v in self.history[name][-1].items() if k not in ("step", "tokens", "sae")}
        path = self.save_checkpoint()
        self.context.barrier()
        return TrainResult(
            steps=self.step, tokens_seen=self.tokens_seen, final_metrics=last, history=self.history,
            checkpoint_path=path, wall_time_s=time.perf_counter() - start_time,
            setting_changes=self.setting_changes,
        )
