"""The fast test bed of the paper's claims: SAEs of growing size, and meta-SAEs, on known atoms.

One seeded activation stream trains every SAE of the sweep at once (the ordinary Trainer). Each
SAE is then scored against the truth: how many true atoms it recovers, and how many of its
latents are compositions of values from different families. Finally a meta-SAE decomposes the
largest SAE of each sparsity level and is scored the same way: do meta-latents recover atoms
that the SAE itself had fused into compositions?
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from sae_fast.evaluation import evaluate
from sae_fast.meta.config import MetaSAEConfig
from sae_fast.meta.train import train_meta_sae
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.batch_topk import BatchTopKSAE
from sae_fast.sae.eval_mode import eval_mode
from sae_fast.synthetic.generator import CompositionalConfig, CompositionalGenerator
from sae_fast.synthetic.scoring import score_dictionary
from sae_fast.training import TrainConfig, Trainer
from sae_fast.io.atomic import atomic_save_figure


@dataclass
class SyntheticBenchmarkConfig:
    """Sweep of BatchTopK SAEs (``sizes`` x ``ks``) and one meta-SAE per ``k`` on the largest SAE."""

    world: CompositionalConfig = field(default_factory=CompositionalConfig)
    sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    ks: tuple[int, ...] = (1, 2)
    n_tokens: int = 150_000
    batch_size: int = 512
    lr: float = 3e-3
    dead_tokens_threshold: int = 20_000
    eval_tokens: int = 20_000
    threshold: float = 0.9
    """Cosine at which a latent counts as an atom / a composition."""
    meta_k: int = 2
    meta_latents: int | None = None
    """Meta-SAE size (default: the number of true atoms)."""
    meta_epochs: int = 3000
    meta_lr: float = 1e-3
    meta_learn_decoder_bias: tuple[bool, ...] = (True, False)
    """Train one meta-SAE per setting: the paper's (learnt b_dec) and the bias-free variant."""
    seed: int = 0
    backend: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if not self.sizes or not self.ks:
            raise ValueError("sizes and ks must each list at least one value")
        if any(k > min(self.sizes) for k in self.ks):
            raise ValueError(f"every k must be <= the smallest size, got ks={self.ks}, sizes={self.sizes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alive_latents(sae: SparseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Boolean ``[d_sae]``: latents that fire (eval mode) on at least one row of ``x``."""
    with eval_mode(sae):
        codes = sae.encode_sparse(x)
    return torch.bincount(codes.latent_indices.cpu(), minlength=sae.d_sae) > 0


def run_synthetic_benchmark(config: SyntheticBenchmarkConfig | None = None) -> dict[str, Any]:
    """Train, score and return a JSON-able report (``sae``: one entry per SAE, ``meta``: per meta-SAE).

    Dead latents (never firing on the held-out samples) are left out of the scores: they are
    random initial directions, not something the SAE learnt.
    """
    config = config if config is not None else SyntheticBenchmarkConfig()
    generator = CompositionalGenerator(config.world)
    truth = generator.truth
    d = config.world.d
    saes = {
        f"k{k}_m{m}": BatchTopKSAE(d, m, k, seed=config.seed + m, backend=config.backend,
                                   dead_tokens_threshold=config.dead_tokens_threshold)
        for k in config.ks for m in config.sizes
    }
    train_config = TrainConfig(lr=config.lr, batch_size=config.batch_size, total_tokens=None, seed=config.seed,
                               progress=config.progress)
    training = Trainer(saes, train_config).train(
        generator.stream(config.n_tokens, config.batch_size, seed=config.seed + 1)
    )
    held_out = generator.sample(config.eval_tokens, torch.Generator().manual_seed(config.seed + 2)).x
    report: dict[str, Any] = {
        "config": config.to_dict(), "expected_l0": config.world.expected_l0, "n_atoms": truth.n_atoms,
        "n_family_atoms": config.world.n_family_atoms, "train_wall_time_s": training.wall_time_s,
        "sae": [], "meta": [],
    }
    for k in config.ks:
        for m in config.sizes:
            sae = saes[f"k{k}_m{m}"]
            alive = alive_latents(sae, held_out)
            score = score_dictionary(sae.W_dec[alive], truth, threshold=config.threshold)
            result = evaluate(sae, held_out)
            report["sae"].append({
                "k": k, "d_sae": m, "alive": int(alive.sum()), "fve": result.fraction_variance_explained,
                "mean_l0": result.mean_l0, **score.to_dict(),
            })
        largest = saes[f"k{k}_m{max(config.sizes)}"]
        rows = largest.W_dec.detach()[alive_latents(largest, held_out)]
        for learn_bias in config.meta_learn_decoder_bias:
            meta_config = MetaSAEConfig(
                n_meta_latents=config.meta_latents or truth.n_atoms, k=config.meta_k, epochs=config.meta_epochs,
                batch_size=rows.shape[0], lr=config.meta_lr, seed=config.seed, backend=config.backend,
                progress=config.progress, learn_decoder_bias=learn_bias,
            )
            meta = train_meta_sae(rows, meta_config)
            score = score_dictionary(meta.meta_sae.W_dec, truth, threshold=config.threshold)
            report["meta"].append({
                "k": k, "of_d_sae": max(config.sizes), "n_rows": int(rows.shape[0]),
                "learn_decoder_bias": learn_bias, "meta_fve": meta.fraction_variance_explained,
                "meta_mean_l0": meta.evaluation.mean_l0, **score.to_dict(),
            })
    return report


def plot_synthetic_benchmark(report: dict[str, Any], path: str) -> None:
    """Atoms recovered, composition latents and FVE against dictionary size, one line per k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for k in sorted({r["k"] for r in report["sae"]}):
        rows = sorted((r for r in report["sae"] if r["k"] == k), key=lambda r: r["d_sae"])
        sizes = [r["d_sae"] for r in rows]
        axes[0].plot(sizes, [r["fraction_recovered"] for r in rows], "o-", label=f"SAE k={k}: all atoms")
        axes[0].plot(sizes, [r["fraction_family_atoms_recovered"] for r in rows], "s--",
                     label=f"SAE k={k}: family atoms")
        axes[1].plot(sizes, [r["latents"]["composition"] for r in rows], "o-", label=f"k={k}")
        axes[2].plot(sizes, [r["fve"] for r in rows], "o-", label=f"k={k}")
        for meta in (m for m in report["meta"] if m["k"] == k):
            marker = "*" if meta["learn_decoder_bias"] else "P"
            bias = "learnt b_dec" if meta["learn_decoder_bias"] else "no b_dec"
            axes[0].plot([meta["of_d_sae"]], [meta["fraction_family_atoms_recovered"]], marker, markersize=12,
                         label=f"meta-SAE of k={k} ({bias}): family atoms")
    axes[0].set(xscale="log", xlabel="SAE latents", ylabel="fraction of true atoms recovered", ylim=(-0.05, 1.05))
    axes[1].set(xscale="log", xlabel="SAE latents", ylabel="composition latents")
    axes[2].set(xscale="log", xlabel="SAE latents", ylabel="FVE (held out)")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.suptitle(f"synthetic world: {report['n_atoms']} atoms, true L0 {report['expected_l0']:.2f}")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)
