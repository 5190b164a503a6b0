"""The one configuration of the evaluation workflow: batch sizes, and the CE-loss inputs when wanted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from sae_fast.config_fields import documented, with_fields
from sae_fast.validation import check_positive_int


@dataclass(frozen=True)
class EvalConfig:
    """How :func:`~sae_fast.evaluation.evaluate` measures an SAE.

    Reconstruction, sparsity and dead latents need only the activations; the CE losses need
    ``model``, ``tokens`` and ``hook_name`` together (all three, or none of them).
    """

    batch_size: int = documented(4096, "Activations per SAE batch (an iterable of batches keeps its own sizes).")
    ce_batch_size: int = documented(8, "Token sequences per model forward pass of the CE losses.")
    first_position: int = documented(
        1, "Positions < first_position of every sequence are left out of the CE losses (as in the cache)."
    )
    progress: bool = documented(False, "Show progress bars.")
    model: Any = documented(None, "The model whose CE loss is measured (a loaded bridge); None: no CE losses.")
    tokens: Tensor | None = documented(None, "Integer token ids [n_sequences, seq_len] of the CE losses.")
    hook_name: str | None = documented(
        None, "Hook where the SAE's reconstruction is spliced in for the CE losses, e.g. blocks.15.hook_resid_post."
    )
    mean_activation: Tensor | None = documented(
        None,
        "The [d_in] mean used for mean-ablation (None: the mean of the evaluated activations; pass the "
        "training mean to ablate with it instead).",
    )
    reference_losses: Any = documented(
        None,
        "The SAE-independent CE losses (ce_clean, ce_zero_ablation, ce_mean_ablation) of an earlier call on "
        "the same tokens, an EvalResult or a dict, so comparing several SAEs runs those passes once.",
    )

    def __post_init__(self) -> None:
        check_positive_int(self.batch_size, "EvalConfig.batch_size")
        check_positive_int(self.ce_batch_size, "EvalConfig.ce_batch_size")
        if isinstance(self.first_position, bool) or not isinstance(self.first_position, int) or self.first_position < 0:
            raise ValueError(f"EvalConfig.first_position must be an int >= 0, got {self.first_position!r}")
        given = [self.model is not None, self.tokens is not None, self.hook_name is not None]
        if any(given) and not all(given):
            raise ValueError("CE evaluation needs model, tokens and hook_name together (or none of them)")
        if self.tokens is not None and (
            not isinstance(self.tokens, Tensor) or self.tokens.dim() != 2 or self.tokens.dtype.is_floating_point
        ):
            raise ValueError("tokens must be an integer tensor [n_sequences, seq_len]")

    @property
    def wants_ce(self) -> bool:
        return self.model is not None

    @classmethod
    def from_keywords(cls, config: EvalConfig | None, keywords: dict[str, Any]) -> EvalConfig:
        """``config`` (default: ``EvalConfig()``) with the fields named in ``keywords`` replaced."""
        return with_fields(cls, config, keywords)
