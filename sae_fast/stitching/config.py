"""The one configuration dataclass of the stitching workflow (paper section 4, appendix A.7)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sae_fast.config_fields import documented, with_fields
from sae_fast.validation import check_int

GPT2_THRESHOLD = 0.7
"""Max-decoder-cosine threshold the paper uses for its GPT-2 SAEs."""
GEMMA_SCOPE_THRESHOLD = 0.4
"""Threshold the paper uses for the Gemma Scope 16k/32k pair."""

Order = Literal["index", "random", "max_cos"]


@dataclass(frozen=True)
class StitchingConfig:
    """Knobs of novel/reconstruction classification, the interpolation path and the stitching analyses."""

    threshold: float = documented(
        GPT2_THRESHOLD,
        "A large-SAE latent is novel when its max decoder cosine to the small SAE is < threshold, a "
        "reconstruction latent otherwise; the bipartite graph joins every pair with cosine >= threshold (so "
        "each reconstruction latent has an edge). 0.7 for GPT-2-like SAEs, 0.4 documented for Gemma Scope.",
    )
    novel_order: Order = documented(
        "index",
        "Order in which the interpolation path adds the novel latents: index (ascending latent index), "
        "random (seeded shuffle, as in the paper's Fig. 18) or max_cos (least similar first).",
    )
    group_order: Literal["index", "random"] = documented(
        "index", "Order in which the interpolation path swaps the groups: index (by smallest member) or random."
    )
    remove_unmatched_small: bool = documented(
        False,
        "After the swaps, remove (one step each) the small-SAE latents that joined no group, so the path ends "
        "exactly at the large SAE. Off by default: the paper's path keeps them.",
    )
    seed: int = documented(0, "Seed of the random orders.")
    encode_batch_size: int = documented(4096, "Tokens per encoder call when encoding the evaluation set.")
    block_size: int | tuple[int, int] | None = documented(
        None, "Tile of the max-cosine computation (None: the library default)."
    )
    min_decoder_cos: float = documented(
        0.5,
        "Fig. 11's R^2 of activation against decoder similarity counts only the latents whose max decoder "
        "cosine is above this.",
    )

    def __post_init__(self) -> None:
        if not -1.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {self.threshold}")
        if self.novel_order not in ("index", "random", "max_cos"):
            raise ValueError(f"novel_order must be 'index', 'random' or 'max_cos', got {self.novel_order!r}")
        if self.group_order not in ("index", "random"):
            raise ValueError(f"group_order must be 'index' or 'random', got {self.group_order!r}")
        if not -1.0 <= float(self.min_decoder_cos) <= 1.0:
            raise ValueError(f"min_decoder_cos must be a cosine in [-1, 1], got {self.min_decoder_cos}")
        if isinstance(self.encode_batch_size, bool) or not isinstance(self.encode_batch_size, int) \
                or self.encode_batch_size < 1:
            raise ValueError(f"encode_batch_size must be a positive int, got {self.encode_batch_size!r}")
        check_int(self.seed, "StitchingConfig.seed", lower=0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OLD_KEYWORDS = {"batch_size": "encode_batch_size"}
"""Keywords the stitching functions took before they took a StitchingConfig, and the field each now sets."""


def as_stitching_config(
    config: StitchingConfig | float | None = None, *, number_field: str = "threshold", **fields: Any
) -> StitchingConfig:
    """The StitchingConfig a stitching function runs with, built from what its caller passed.

    ``config`` is a StitchingConfig, None (the defaults), or a bare number, which sets ``number_field``
    (the functions took the threshold, or a batch size, there before they took a config);
    ``fields`` are StitchingConfig fields that replace the config's.
    """
    for old, new in OLD_KEYWORDS.items():
        if old in fields:
            fields[new] = fields.pop(old)
    if isinstance(config, (int, float)) and not isinstance(config, bool):
        config = StitchingConfig(**{number_field: config})
    elif config is not None and not isinstance(config, StitchingConfig):
        raise TypeError(
            f"config must be a StitchingConfig (or a number: its {number_field}), got {type(config).__name__}"
        )
    return with_fields(StitchingConfig, config, fields, kind="stitching")
