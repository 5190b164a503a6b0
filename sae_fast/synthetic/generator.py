"""Activations built from a known dictionary: attribute families whose values combine, plus free atoms.

The paper's colour x shape example (Fig. 2) generalised. A *family* is a set of mutually exclusive
values (red/green/blue); a sample draws at most one value per family, each family being present
with its own probability, so values of different families co-occur all the time. That
co-occurrence is what tempts a large SAE to spend one latent on "blue square" instead of two on
"blue" and "square". *Independent* atoms fire on their own, rarely, and have no such structure.

    x = sum_active  magnitude * atom  +  noise * N(0, I)

Everything is seeded: the atoms by ``config.seed``, the samples by the generator passed to
:meth:`CompositionalGenerator.sample` (or the seed of :meth:`CompositionalGenerator.stream`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from sae_fast.config_fields import documented
from sae_fast.validation import check_int, check_positive_int


@dataclass(frozen=True)
class CompositionalConfig:
    """Shape of the synthetic world (one dataclass, every field has a sensible default)."""

    d: int = documented(64, "Dimension of the activations.")
    family_sizes: tuple[int, ...] = documented(
        (4, 4), "Number of values of each attribute family, e.g. (3, 3) is colour x shape."
    )
    family_probability: float | tuple[float, ...] = documented(
        0.8,
        "Probability that a family contributes a value to a sample (one number for all families, or one per "
        "family).",
    )
    n_independent: int = documented(8, "Atoms that belong to no family and fire independently.")
    independent_probability: float = documented(0.03, "Firing probability of each independent atom.")
    magnitude_range: tuple[float, float] = documented(
        (0.8, 1.2), "Active atoms get a magnitude uniform in [low, high]."
    )
    noise_std: float = documented(
        0.01, "Standard deviation of the isotropic Gaussian noise added to every sample."
    )
    orthogonal_atoms: bool = documented(
        True,
        "Draw orthonormal atoms (needs n_atoms <= d) so that scores measure the SAE, not accidental overlaps "
        "between atoms; otherwise random unit vectors.",
    )
    seed: int = documented(0, "Seed of the atoms.")

    def __post_init__(self) -> None:
        check_positive_int(self.d, "d")
        if not isinstance(self.family_sizes, tuple):
            raise TypeError(f"family_sizes must be a tuple of positive ints, got {self.family_sizes!r}")
        for index, size in enumerate(self.family_sizes):
            check_positive_int(size, f"family_sizes[{index}]")
        check_int(self.n_independent, "n_independent", lower=0)
        if self.n_atoms == 0:
            raise ValueError("the dictionary is empty: give at least one family or one independent atom")
        for p in self.family_probabilities + (self.independent_probability,):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"probabilities must lie in [0, 1], got {p}")
        low, high = self.magnitude_range
        if not 0.0 < low <= high:
            raise ValueError(f"magnitude_range must satisfy 0 < low <= high, got {self.magnitude_range}")
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.orthogonal_atoms and self.n_atoms > self.d:
            raise ValueError(
                f"{self.n_atoms} orthogonal atoms do not fit in d={self.d}; raise d, shrink the "
                "dictionary, or pass orthogonal_atoms=False"
            )

    @property
    def family_probabilities(self) -> tuple[float, ...]:
        p = self.family_probability
        if isinstance(p, tuple):
            if len(p) != len(self.family_sizes):
                raise ValueError(
                    f"family_probability has {len(p)} entries but there are {len(self.family_sizes)} families"
                )
            return tuple(float(v) for v in p)
        return (float(p),) * len(self.family_sizes)

    @property
    def n_family_atoms(self) -> int:
        return sum(self.family_sizes)

    @property
    def n_atoms(self) -> int:
        return self.n_family_atoms + self.n_independent

    @property
    def expected_l0(self) -> float:
        """Expected number of active atoms per sample (the true sparsity)."""
        return sum(self.family_probabilities) + self.n_independent * self.independent_probability


@dataclass(frozen=True)
class GroundTruth:
    """The dictionary that generated the data.

    ``atoms [n_atoms, d]`` are unit rows: first the values of family 0, then family 1, ..., then
    the independent atoms. ``family_of[i]`` is the family of atom ``i`` or -1 if independent.
    """

    atoms: Tensor
    family_of: Tensor
    family_sizes: tuple[int, ...]
    names: tuple[str, ...] = field(default=())

    @property
    def n_atoms(self) -> int:
        return self.atoms.shape[0]

    def family_atoms(self, family: int) -> Tensor:
        """Indices of the atoms of one family."""
        return (self.family_of == family).nonzero().flatten()

    def compositions(self, max_order: int | None = None) -> tuple[Tensor, list[tuple[int, ...]]]:
        """Unit directions of every normalised sum of one value from each of >= 2 distinct families.

        Returns ``(directions [n_compositions, d], members)`` where ``members[j]`` lists the atoms
        summed into direction ``j``. ``max_order`` caps how many families take part.
        """
        n_families = len(self.family_sizes)
        max_order = n_families if max_order is None else min(max_order, n_families)
        members: list[tuple[int, ...]] = []
        per_family = [self.family_atoms(f).tolist() for f in range(n_families)]
        for order in range(2, max_order + 1):
            for families in itertools.combinations(range(n_families), order):
                members.extend(itertools.product(*(per_family[f] for f in families)))
        if len(members) > 2_000_000:
            raise ValueError(f"{len(members)} candidate compositions is too many; lower max_order")
        if not members:
            return self.atoms.new_zeros(0, self.atoms.shape[1]), []
        index = torch.tensor(members, dtype=torch.int64) if len({len(m) for m in members}) == 1 else None
        if index is not None:
            directions = self.atoms[index].sum(dim=1)
        else:
            directions = torch.stack([self.atoms[list(m)].sum(dim=0) for m in members])
        return directions / directions.norm(dim=1, keepdim=True), members


@dataclass(frozen=True)
class SyntheticBatch:
    """Samples ``x [n, d]`` and the true coefficients ``coefficients [n, n_atoms]`` that made them."""

    x: Tensor
    coefficients: Tensor


class CompositionalGenerator:
    """Draws activations from a :class:`CompositionalConfig` world; ``truth`` is its dictionary."""

    def __init__(self, config: CompositionalConfig | None = None) -> None:
        self.config = config = config if config is not None else CompositionalConfig()
        if not isinstance(config, CompositionalConfig):
            raise TypeError(f"config must be a CompositionalConfig, got {type(config).__name__}")
        generator = torch.Generator().manual_seed(config.seed)
        raw = torch.randn(config.d, config.n_atoms, generator=generator, dtype=torch.float64)
        if config.orthogonal_atoms:
            atoms = torch.linalg.qr(raw).Q.T.contiguous()
        else:
            atoms = (raw / raw.norm(dim=0, keepdim=True)).T.contiguous()
        family_of = torch.cat([
            torch.full((size,), f, dtype=torch.int64) for f, size in enumerate(config.family_sizes)
        ] + [torch.full((config.n_independent,), -1, dtype=torch.int64)])
        names = tuple(
            [f"family{f}:value{v}" for f, size in enumerate(config.family_sizes) for v in range(size)]
            + [f"independent{i}" for i in range(config.n_independent)]
        )
        self.truth = GroundTruth(atoms.float(), family_of, config.family_sizes, names)
        self._offsets = torch.tensor([0, *itertools.accumulate(config.family_sizes)], dtype=torch.int64)

    def sample(self, n: int, generator: torch.Generator) -> SyntheticBatch:
        """``n`` samples drawn with ``generator`` (a seeded ``torch.Generator`` on the CPU)."""
        check_positive_int(n, "n")
        if not isinstance(generator, torch.Generator):
            raise TypeError("generator must be a torch.Generator, e.g. torch.Generator().manual_seed(0)")
        c = self.config
        coefficients = torch.zeros(n, c.n_atoms)
        low, high = c.magnitude_range
        for f, (size, p) in enumerate(zip(c.family_sizes, c.family_probabilities)):
            present = torch.rand(n, generator=generator) < p
            value = torch.randint(size, (n,), generator=generator) + self._offsets[f]
            magnitude = low + (high - low) * torch.rand(n, generator=generator)
            rows = present.nonzero().flatten()
            coefficients[rows, value[rows]] = magnitude[rows]
        if c.n_independent:
            fires = torch.rand(n, c.n_independent, generator=generator) < c.independent_probability
            magnitude = low + (high - low) * torch.rand(n, c.n_independent, generator=generator)
            coefficients[:, c.n_family_atoms:] = magnitude * fires
        x = coefficients @ self.truth.atoms
        if c.noise_std > 0:
            x += c.noise_std * torch.randn(n, c.d, generator=generator)
        return SyntheticBatch(x, coefficients)

    def stream(self, n_tokens: int, batch_size: int, seed: int) -> SyntheticStream:
        """``n_tokens // batch_size`` full batches ``[batch_size, d]`` (every step the same BatchTopK budget)."""
        return SyntheticStream(self, n_tokens, batch_size, seed)


class SyntheticStream:
    """A re-iterable, seeded stream of activation batches (each iteration replays the same data)."""

    def __init__(self, source: CompositionalGenerator, n_tokens: int, batch_size: int, seed: int) -> None:
        self.source = source
        self.n_tokens = check_positive_int(n_tokens, "n_tokens")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = int(seed)
        if n_tokens < batch_size:
            raise ValueError(f"n_tokens={n_tokens} is less than one batch of {batch_size}")

    def __len__(self) -> int:
        return self.n_tokens // self.batch_size

    def __iter__(self) -> Iterator[Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(len(self)):
            yield self.source.sample(self.batch_size, generator).x
