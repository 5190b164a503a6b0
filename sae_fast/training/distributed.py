"""Data-parallel semantics shared by DDP ranks and gradient-accumulation micro-batches.

One optimiser step sees R ranks x M micro-batches ("shards") of ``n`` tokens each. The rules
below make a 2-rank run and a single process accumulating the same 2 micro-batches compute the
same update, bit for bit on CPU:

- **Loss and gradients.** Each shard takes its own batch top-k with budget ``n * k`` (BatchTopK
  never looks across shards, so no activations are exchanged); the optimised loss is the mean of
  the shard losses. Gradients are summed over a rank's micro-batches and divided by M, then
  all-reduced (summed) and divided by R.
- **BatchTopK theta.** Every shard starts from the same theta and applies the running-mean update
  with its own smallest kept activation; the new theta is the mean of the shards' thetas. The
  update is linear in the minimum, so this equals one update with the mean of the shard minima,
  and the batch counter advances by one per step, not per shard.
- **Dead-latent counters.** A latent's "tokens since fired" is reset to 0 if it fired in *any*
  shard, otherwise it grows by the total tokens of the step (all-reduced MIN of the shard
  counters, then that rule).
- **b_dec initialisation** from the first batch uses the float64 sum over all shards divided by
  the global token count.

Ranks must receive equal-sized local batches (``batch_size / world_size`` rows, e.g. from
:class:`~sae_fast.training.data.ShuffledBatches` with ``rank``/``world_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from sae_fast.sae.base import SparseAutoencoder


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torch.distributed group (world_size 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """The initialised default process group, or a single-process context."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce(self, tensor: Tensor, op: str = "sum") -> Tensor:
        """In-place all-reduce (no-op for a single process); ``op`` in {sum, min, max}."""
        if self.enabled:
            dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                                        "max": dist.ReduceOp.MAX}[op])
        return tensor

    def broadcast_module_(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (so all start identical)."""
        if self.enabled:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def average_gradients_(sae: SparseAutoencoder, micro_batches: int, context: DistributedContext) -> None:
    """Turn the summed micro-batch gradients into the mean over all shards of all ranks."""
    grads = [p.grad for p in sae.parameters() if p.grad is not None]
    if not grads:
        return
    if context.enabled:
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
        context.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
    shards = micro_batches * context.world_size
    if shards > 1:
        for g in grads:
            g.div_(shards)


class StepStatistics:
    """Snapshot, per-shard collection and merge of one SAE's step-local training state.

    The SAE names its state and how shards combine (``training_state`` / ``training_state_reductions``);
    this class only runs those reductions over micro-batches and ranks (see the module doc).
    """

    def __init__(self, sae: SparseAutoencoder) -> None:
        self.sae = sae
        self.start = sae.training_state()
        self.reductions = sae.training_state_reductions()
        self.combined: dict[str, Tensor] | None = None
        self.shards_tokens = torch.zeros(2, dtype=torch.int64, device=sae.device)

    @torch.no_grad()
    def restore(self) -> None:
        """Put the state back as it was before the step (before each shard, and on failure)."""
        self.sae.load_training_state_(self.start)

    @torch.no_grad()
    def collect(self, n_tokens: int) -> None:
        """Record the state one shard's ``training_loss`` left behind."""
        state = self.sae.training_state()
        if self.combined is None:
            self.combined = state
        else:
            for name, tensor in state.items():
                self.combined[name] = _combine(self.reductions[name], self.combined[name], tensor)
        self.shards_tokens[0] += 1
        self.shards_tokens[1] += n_tokens

    @torch.no_grad()
    def merge(self, context: DistributedContext) -> None:
        """Write the merged state of all shards of all ranks into the SAE."""
        if self.combined is None:
            raise RuntimeError("StepStatistics.merge called before any shard was collected")
        context.all_reduce(self.shards_tokens, "sum")
        shards, tokens = int(self.shards_tokens[0]), int(self.shards_tokens[1])
        for name, reduction in self.reductions.items():
            context.all_reduce(self.combined[name], "sum" if reduction == "mean" else reduction)
            if reduction == "mean":
                self.combined[name] /= shards
        self.sae.merge_training_state_(self.start, self.combined, tokens)


def _combine(reduction: str, left: Tensor, right: Tensor) -> Tensor:
    if reduction == "min":
        return torch.minimum(left, right)
    if reduction == "max":
        return torch.maximum(left, right)
    if reduction == "mean":
        return left + right  # a sum until merge divides by the shard count
    raise ValueError(f"unknown training-state reduction {reduction!r}; expected 'min', 'max' or 'mean'")


def global_mean(chunks: list[Tensor], context: DistributedContext) -> Tensor:
    """Mean over the rows of all ``chunks`` of all ranks, summed in float64 (order-robust)."""
    total = torch.zeros(chunks[0].shape[-1], dtype=torch.float64, device=chunks[0].device)
    count = torch.zeros((), dtype=torch.float64, device=chunks[0].device)
    for chunk in chunks:
        total += chunk.double().sum(dim=0)
        count += chunk.shape[0]
    context.all_reduce(total)
    context.all_reduce(count)
    return total / count
