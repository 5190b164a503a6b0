"""Named training recipes: the settings that reproduce a paper, as one object for the API and the CLI.

``PAPER`` is the recipe of "Sparse Autoencoders Do Not Find Canonical Units of Analysis" as its
reference code (bartbussmann/BatchTopK) runs it. The "The paper's recipe" section of docs/training.md lists every
difference between that code and sae_fast, and which side each recipe keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sae_fast.training.config import PAPER_BATCH_SIZE, PAPER_BETAS, PAPER_LR, TrainConfig


K_SPARSE_ARCHITECTURES = ("topk", "batchtopk", "matryoshka_batchtopk")
"""Architectures with a budget k and the dead-latent aux loss."""


@dataclass(frozen=True)
class Recipe:
    """Defaults for :class:`TrainConfig` and for the SAEs' constructors; explicit settings win."""

    name: str
    description: str
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields."""
    sae: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments every SAE gets (k-sparse ones only where the architecture has them)."""
    k_sparse: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of TopK/BatchTopK SAEs only (the aux loss)."""
    dead_after_batches: int | None = None
    """A latent counts as dead after this many batches without firing (converted to tokens)."""

    def train_config(self, **overrides: Any) -> TrainConfig:
        return TrainConfig(**{**self.train, **overrides})

    def sae_kwargs(self, architecture: str, batch_size: int) -> dict[str, Any]:
        """Constructor defaults for an SAE of ``architecture`` trained with ``batch_size`` tokens per step."""
        kwargs = dict(self.sae)
        if self.dead_after_batches is not None:
            kwargs["dead_tokens_threshold"] = self.dead_after_batches * batch_size
        if architecture in K_SPARSE_ARCHITECTURES:
            kwargs.update(self.k_sparse)
        return kwargs


PAPER = Recipe(
    name="paper",
    description=(
        "the paper's reference code: per-token layer_norm inputs (input_unit_norm), Adam 3e-4 with betas "
        "(0.9, 0.99), batch 4096, aux loss over the top 512 dead latents with coefficient 1/32, a latent "
        "dead after 5 batches without firing"
    ),
    train={"lr": PAPER_LR, "betas": PAPER_BETAS, "batch_size": PAPER_BATCH_SIZE},
    sae={"normalize_activations": "layer_norm"},
    k_sparse={"aux_k": 512, "aux_coefficient": 1 / 32},
    dead_after_batches=5,
)

RECIPES = {recipe.name: recipe for recipe in (PAPER,)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}")
    return RECIPES[name]
