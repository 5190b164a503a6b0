"""The one configuration of the activation workflow (streaming and on-disk caching share it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sae_fast.config_fields import documented

CACHE_DTYPES = ("float16", "float32")
AUTOCAST_MODES = ("none", "bfloat16")


def _check_int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_norm_ratio(value: object) -> None:
    """A sink-filter ratio is None (keep every row) or a number > 1 (a multiple of the median norm)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1):
        raise ValueError(f"max_norm_ratio must be None (keep every row) or a number > 1, got {value!r}")


@dataclass(frozen=True)
class ActivationConfig:
    """How activations are produced from text."""

    hook_name: str = documented(
        "blocks.15.hook_resid_post",
        "Where to read the model, e.g. blocks.15.hook_resid_post (see resid_hook_name).",
    )
    seq_len: int = documented(128, "Tokens per sequence fed to the model.")
    first_position: int = documented(
        1,
        "Positions < first_position of every sequence are dropped. Default 1 drops position 0, whose residual "
        "norm in SmolLM2 is ~100x that of other positions (attention sink, no BOS token); SAEs are trained and "
        "CE-evaluated on positions first_position: only.",
    )
    prepend_bos: bool = documented(False, "Start every sequence with the BOS token (for models trained with one).")
    model_batch_size: int = documented(16, "Sequences per forward pass.")
    batch_size: int = documented(4096, "Activation rows per yielded training batch.")
    shuffle_buffer_size: int = documented(
        65536,
        "Rows mixed before batches are drawn, so a batch mixes many sequences and documents; 0 disables "
        "shuffling (rows come in sequence order). Must be 0 or >= 2 * batch_size.",
    )
    seed: int = documented(0, "Seeds the shuffle buffer; same seed, same text -> same batches.")
    max_tokens: int | None = documented(
        None,
        "Stop after this many activation rows (None = until the text runs out). Required for an on-disk "
        "cache, whose files are sized up front (rounded up to whole sequences).",
    )
    cache_dtype: str = documented(
        "float16", 'Storage dtype of an on-disk cache, "float16" (half the disk) or "float32".'
    )
    autocast: str = documented(
        "none",
        'Precision of the model\'s forward pass: "none" keeps float32; "bfloat16" runs it under torch.autocast '
        "(relative error 0.007 on SmolLM2 at layer 15). Its speed depends on the hardware: on this project's "
        "2-core CPU bfloat16 extracted at 0.44x-0.55x the float32 rate (see docs/training.md), so float32 is the "
        'default; try "bfloat16" on GPUs and CPUs with AMX.',
    )
    heldout_fraction: float = documented(
        0.05,
        "Share of a cache's sequences (the last ones, whole sequences) held out from training for evaluation; "
        "ActivationCacheReader(split=...) picks the part to read.",
    )
    max_norm_ratio: float | None = documented(
        None,
        "Streams drop rows whose L2 norm exceeds this multiple of the median row norm (attention-sink rows); "
        "the median is estimated from the first forward batch (model_batch_size sequences) and then kept "
        "fixed. None keeps every row. Caches store every row with its norm; the filter is chosen when reading "
        "(ActivationCacheReader(max_norm_ratio=)).",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.hook_name, str) or not self.hook_name:
            raise ValueError(f"hook_name must be a non-empty str, got {self.hook_name!r}")
        _check_int(self.seq_len, "seq_len", 2)
        _check_int(self.first_position, "first_position", 0)
        if self.first_position >= self.seq_len:
            raise ValueError(f"first_position={self.first_position} must be < seq_len={self.seq_len}")
        if not isinstance(self.prepend_bos, bool):
            raise TypeError(f"prepend_bos must be a bool, got {self.prepend_bos!r}")
        _check_int(self.model_batch_size, "model_batch_size", 1)
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.shuffle_buffer_size, "shuffle_buffer_size", 0)
        if 0 < self.shuffle_buffer_size < 2 * self.batch_size:
            raise ValueError(
                f"shuffle_buffer_size={self.shuffle_buffer_size} must be 0 (no shuffling) or at least "
                f"2 * batch_size = {2 * self.batch_size}"
            )
        _check_int(self.seed, "seed", 0)
        if self.max_tokens is not None:
            _check_int(self.max_tokens, "max_tokens", 1)
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype must be one of {CACHE_DTYPES}, got {self.cache_dtype!r}")
        if self.autocast not in AUTOCAST_MODES:
            raise ValueError(f"autocast must be one of {AUTOCAST_MODES}, got {self.autocast!r}")
        if isinstance(self.heldout_fraction, bool) or not isinstance(self.heldout_fraction, (int, float)) \
                or not 0 <= self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be a number in [0, 1), got {self.heldout_fraction!r}")
        check_norm_ratio(self.max_norm_ratio)

    @property
    def rows_per_sequence(self) -> int:
        """Activation rows one sequence contributes."""
        return self.seq_len - self.first_position

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActivationConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown ActivationConfig fields {unknown}")
        return cls(**data)
