"""Score a learnt dictionary against the synthetic ground truth.

Three questions, all answered with decoder cosine similarity (the paper's measure):

- *Recovery*: which true atoms have a latent within ``threshold`` cosine of them?
- *Composition*: which latents are not an atom but a normalised sum of values of two or more
  families ("blue square"), i.e. the non-atomic latents the paper predicts for large SAEs?
- The same scoring applied to a meta-SAE's decoder asks whether meta-latents recover the atoms
  that the SAE's composed latents hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_fast.similarity import max_cosine_similarity
from sae_fast.synthetic.generator import GroundTruth

ATOM, COMPOSITION, OTHER = 0, 1, 2
KIND_NAMES = ("atom", "composition", "other")


@dataclass(frozen=True)
class RecoveryScore:
    """Per-atom and per-latent verdicts of one dictionary (see :func:`score_dictionary`)."""

    threshold: float
    atom_max_cos: Tensor  # [n_atoms] best cosine of each true atom to any latent
    atom_best_latent: Tensor  # [n_atoms] that latent
    latent_kind: Tensor  # [d_sae] ATOM / COMPOSITION / OTHER
    latent_atom_cos: Tensor  # [d_sae] best cosine of each latent to an atom
    latent_composition_cos: Tensor  # [d_sae] best cosine to a composition (0 if there are none)
    latent_composition: list[tuple[int, ...] | None]  # the atoms of that composition, for COMPOSITION latents
    family_of: Tensor  # [n_atoms] copied from the truth, to split the counts

    @property
    def atoms_recovered(self) -> int:
        return int((self.atom_max_cos >= self.threshold).sum())

    @property
    def fraction_recovered(self) -> float:
        return self.atoms_recovered / self.atom_max_cos.numel()

    @property
    def family_atoms_recovered(self) -> int:
        return int(((self.atom_max_cos >= self.threshold) & (self.family_of >= 0)).sum())

    @property
    def fraction_family_atoms_recovered(self) -> float:
        n = int((self.family_of >= 0).sum())
        return self.family_atoms_recovered / n if n else float("nan")

    def count(self, kind: int) -> int:
        return int((self.latent_kind == kind).sum())

    @property
    def n_compositions(self) -> int:
        return self.count(COMPOSITION)

    @property
    def distinct_compositions(self) -> int:
        return len({m for m in self.latent_composition if m is not None})

    def to_dict(self) -> dict:
        """JSON-able summary."""
        return {
            "threshold": self.threshold,
            "n_atoms": self.atom_max_cos.numel(),
            "atoms_recovered": self.atoms_recovered,
            "fraction_recovered": self.fraction_recovered,
            "family_atoms_recovered": self.family_atoms_recovered,
            "fraction_family_atoms_recovered": self.fraction_family_atoms_recovered,
            "n_latents_scored": self.latent_kind.numel(),
            "latents": {name: self.count(kind) for kind, name in enumerate(KIND_NAMES)},
            "distinct_compositions": self.distinct_compositions,
            "mean_atom_max_cos": float(self.atom_max_cos.mean()),
        }


def score_dictionary(
    W_dec: Tensor, truth: GroundTruth, threshold: float = 0.9, max_order: int | None = None
) -> RecoveryScore:
    """Score decoder rows ``W_dec [d_sae, d]`` against ``truth``.

    A latent is an ATOM if its best atom cosine reaches ``threshold``; otherwise a COMPOSITION if
    some normalised sum of values from >= 2 families (at most ``max_order`` of them) reaches it
    and beats the best single atom; otherwise OTHER. A perfect dictionary (the atoms themselves)
    recovers every atom and has no compositions.
    """
    if not isinstance(W_dec, Tensor) or W_dec.dim() != 2:
        raise TypeError("W_dec must be a 2-D tensor [d_sae, d] of decoder rows (e.g. sae.W_dec)")
    if W_dec.shape[1] != truth.atoms.shape[1]:
        raise ValueError(f"W_dec rows have dimension {W_dec.shape[1]} but the atoms have {truth.atoms.shape[1]}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine in (0, 1], got {threshold}")
    W = W_dec.detach().float().cpu()
    atoms = truth.atoms.float()
    atom_max_cos, atom_best_latent = max_cosine_similarity(atoms, W)
    latent_atom_cos, _ = max_cosine_similarity(W, atoms)
    directions, members = truth.compositions(max_order)
    if members:
        latent_comp_cos, latent_comp = max_cosine_similarity(W, directions)
    else:
        latent_comp_cos = torch.zeros(W.shape[0])
        latent_comp = torch.zeros(W.shape[0], dtype=torch.int64)
    kind = torch.full((W.shape[0],), OTHER, dtype=torch.int64)
    is_comp = (latent_comp_cos >= threshold) & (latent_comp_cos > latent_atom_cos)
    kind[is_comp] = COMPOSITION
    kind[latent_atom_cos >= threshold] = ATOM
    compositions = [members[int(j)] if k == COMPOSITION else None for k, j in zip(kind.tolist(), latent_comp)]
    return RecoveryScore(
        threshold=float(threshold), atom_max_cos=atom_max_cos, atom_best_latent=atom_best_latent,
        latent_kind=kind, latent_atom_cos=latent_atom_cos, latent_composition_cos=latent_comp_cos,
        latent_composition=compositions, family_of=truth.family_of,
    )
