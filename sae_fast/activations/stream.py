"""Stream shuffled training batches of activations straight from a model (no disk).

``ActivationStream(model, texts, config)`` is an iterable of float32 ``[config.batch_size, d_model]``
tensors on the model's device: texts -> packed token sequences -> activations at ``config.hook_name``
(model run only as deep as the hook) -> positions ``config.first_position:`` kept -> shuffle buffer ->
batches. It is deterministic for a fixed text source and seed, so a trainer can resume it by replaying
(``sae_fast.training.data.CountingBatches``). To train several SAEs on the same activations, extract
once with :func:`sae_fast.activations.cache.extract_activations` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_fast.activations.config import ActivationConfig
from sae_fast.activations.hooks import capture_activations, check_hook_name
from sae_fast.activations.models import check_fits_context, model_d_model, model_device
from sae_fast.activations.sequences import batched, token_sequences
from sae_fast.activations.shuffle import ShuffleBuffer


def forward_precision(model: Any, autocast: str) -> contextlib.AbstractContextManager[Any]:
    """The context the model's forward pass runs in for ``ActivationConfig.autocast``."""
    if autocast == "none":
        return contextlib.nullcontext()
    if autocast != "bfloat16":
        raise ValueError(f"autocast must be 'bfloat16' or 'none', got {autocast!r}")
    return torch.autocast(device_type=model_device(model).type, dtype=torch.bfloat16)


def activation_rows(
    model: Any, tokens: Tensor, hook_name: str, first_position: int = 1, autocast: str = "none"
) -> Tensor:
    """Activations ``[batch * (seq - first_position), d]`` for ``tokens`` ``[batch, seq]``, sequence-major.

    Row ``i * (seq - first_position) + (p - first_position)`` is sequence ``i`` at position ``p``. With
    ``autocast="bfloat16"`` the forward pass runs under ``torch.autocast``; the rows are float32 either way.
    """
    with forward_precision(model, autocast):
        acts = capture_activations(model, tokens, hook_name).float()
    if acts.dim() != 3:
        raise ValueError(
            f"hook {hook_name!r} gives activations of shape {tuple(acts.shape)}; only [batch, seq, d] hooks "
            "(residual stream, mlp_out, attn_out, ...) can feed an SAE"
        )
    return acts[:, first_position:].reshape(-1, acts.shape[-1])


def config_sequences(texts: Iterable[str], tokenizer: Any, config: ActivationConfig) -> Iterator[Tensor]:
    """The token sequences ``config`` asks for (shared by the stream and the cache so they agree)."""
    return token_sequences(texts, tokenizer, config.seq_len, prepend_bos=config.prepend_bos)


class ActivationStream:
    """Shuffled ``[batch_size, d_model]`` float32 batches of activations (see the module docstring).

    Args:
        model: a ``TransformerBridge`` (``load_model``).
        texts: documents, e.g. a ``TextSource``; iterated once per pass over the stream.
        config: hook, sequence length, positions, batch and buffer sizes, seed, ``max_tokens``.
        tokenizer: defaults to ``model.tokenizer``.
        progress: show a tqdm bar counting activation rows.

    After (or during) iteration ``rows_yielded`` and ``sequences_read`` count what was produced.

    With ``config.max_norm_ratio`` rows whose L2 norm exceeds that multiple of the median norm are
    dropped (attention sinks). A stream cannot see the whole data first, so the median is estimated
    from the first forward batch (``config.model_batch_size`` sequences) and kept for the whole pass;
    ``sink_filter_stats()`` reports it, the threshold and the rows dropped so far.
    """

    def __init__(
        self, model: Any, texts: Iterable[str], config: ActivationConfig, *, tokenizer: Any = None, progress: bool = False
    ) -> None:
        if not isinstance(config, ActivationConfig):
            raise TypeError(f"config must be an ActivationConfig, got {type(config).__name__}")
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of documents, not a single str; wrap it: TextList([text])")
        check_hook_name(model, config.hook_name)
        check_fits_context(model, config.seq_len)
        self.model = model
        self.texts = texts
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError("the model has no tokenizer; pass tokenizer=...")
        self.progress = progress
        self.d_model = model_d_model(model)
        self.rows_yielded = 0
        self.sequences_read = 0
        self.rows_excluded = 0
        self.median_norm: float | None = None

    def sink_filter_stats(self) -> dict[str, Any]:
        """The sink filter: ratio, the median norm of the first forward batch, threshold, rows dropped."""
        ratio = self.config.max_norm_ratio
        stats: dict[str, Any] = {"max_norm_ratio": ratio, "excluded_rows": self.rows_excluded}
        if ratio is not None and self.median_norm is not None:
            stats.update(median_norm=self.median_norm, threshold=ratio * self.median_norm,
                         median_estimated_from="first forward batch")
        return stats

    def _drop_sinks(self, rows: Tensor) -> Tensor:
        ratio = self.config.max_norm_ratio
        if ratio is None:
            return rows
        norms = rows.norm(dim=1)
        if self.median_norm is None:
            self.median_norm = float(norms.median())
        keep = norms <= ratio * self.median_norm
        self.rows_excluded += int((~keep).sum())
        return rows[keep]

    def __iter__(self) -> Iterator[Tensor]:
        config = self.config
        buffer = ShuffleBuffer(config.shuffle_buffer_size, config.batch_size, config.seed)
        limit = config.max_tokens
        self.rows_yielded = 0
        self.sequences_read = 0
        self.rows_excluded = 0
        self.median_norm = None
        rows_taken = 0
        bar = tqdm(total=limit, unit="tok", desc="activations", disable=not self.progress)
        try:
            sequences = config_sequences(self.texts, self.tokenizer, config)
            for tokens in batched(sequences, config.model_batch_size):
                if limit is not None and rows_taken >= limit:
                    break
                rows = activation_rows(self.model, tokens, config.hook_name, config.first_position, config.autocast)
                rows = self._drop_sinks(rows)
                if limit is not None:
                    rows = rows[: limit - rows_taken]
                rows_taken += rows.shape[0]
                self.sequences_read += tokens.shape[0]
                for batch in buffer.add(rows):
                    self.rows_yielded += batch.shape[0]
                    bar.update(batch.shape[0])
                    yield batch
            for batch in buffer.flush(drop_last=True):
                self.rows_yielded += batch.shape[0]
                bar.update(batch.shape[0])
                yield batch
        finally:
            bar.close()
