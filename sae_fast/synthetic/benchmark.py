"""The fast test bed of the paper's claims: SAEs of growing size, and meta-SAEs, on known atoms.

One seeded activation stream trains every SAE of the sweep at once (the ordinary Trainer). Each
SAE is then scored against the truth: how many true atoms it recovers, and how many of its
latents are compositions of values from different families. Finally a meta-SAE decomposes the
largest SAE of each sparsity level and is scored the same way: do meta-latents recover atoms
that the SAE itself had fused into compositions?
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from sae_fast.config_fields import documented
from sae_fast.evaluation import evaluate
from sae_fast.meta.config import MetaSAEConfig
from sae_fast.meta.train import train_meta_sae
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.batch_topk import BatchTopKSAE
from sae_fast.sae.eval_mode import eval_mode
from sae_fast.synthetic.generator import CompositionalConfig, CompositionalGenerator
from sae_fast.synthetic.scoring import score_dictionary
from sae_fast.training import TrainConfig, Trainer
from sae_fast.training.config import nested_train_config
from sae_fast.io.atomic import atomic_save_figure


SYNTHETIC_TRAINING = {"lr": 3e-3, "batch_size": 512, "total_tokens": 150_000, "progress": False}
"""The sweep's training defaults: 150k tokens in batches of 512 at lr 3e-3, without a progress bar."""


@dataclass
class SyntheticBenchmarkConfig:
    """Sweep of BatchTopK SAEs (``sizes`` x ``ks``) and one meta-SAE per ``k`` on the largest SAE.

    The SAEs' optimisation is the nested ``train`` (a :class:`~sae_fast.training.TrainConfig`); a dict
    changes some of its fields and keeps the sweep's values for the rest, e.g. ``train={"total_tokens": 40_000}``.
    """

    world: CompositionalConfig = documented(factory=CompositionalConfig, help="The synthetic world sampled.")
    sizes: tuple[int, ...] = documented((8, 16, 32, 64, 128), "Dictionary sizes of the sweep.")
    ks: tuple[int, ...] = documented((1, 2), "BatchTopK k values of the sweep (each <= the smallest size).")
    dead_tokens_threshold: int = documented(20_000, "A latent is dead after this many tokens without firing.")
    eval_tokens: int = documented(20_000, "Held-out samples the SAEs are scored on.")
    threshold: float = documented(0.9, "Cosine at which a latent counts as an atom / a composition.")
    meta_k: int = documented(2, "Active meta-latents per decoder row of every meta-SAE.")
    meta_latents: int | None = documented(None, "Meta-SAE size (default: the number of true atoms).")
    meta_epochs: int = documented(3000, "Epochs of every meta-SAE over the decoder rows.")
    meta_lr: float = documented(1e-3, "Adam learning rate of every meta-SAE.")
    meta_learn_decoder_bias: tuple[bool, ...] = documented(
        (True, False),
        "Train one meta-SAE per setting: the paper's (learnt b_dec) and the bias-free variant.",
    )
    backend: str = documented("auto", "Sparse-kernel backend of the SAEs and meta-SAEs.")
    train: TrainConfig = documented(
        factory=lambda: TrainConfig(**SYNTHETIC_TRAINING),
        help="Optimisation of the SAEs; total_tokens is the length of the synthetic stream (required) and seed "
             "seeds the SAEs, the stream, the held-out samples and the meta-SAEs.",
    )

    def __post_init__(self) -> None:
        self.train = nested_train_config(self.train, SYNTHETIC_TRAINING, "SyntheticBenchmarkConfig")
        if self.train.total_tokens is None:
            raise ValueError("train.total_tokens must be set: it is the length of the synthetic stream")
        if not self.sizes or not self.ks:
            raise ValueError("sizes and ks must each list at least one value")
        if any(k > min(self.sizes) for k in self.ks):
            raise ValueError(f"every k must be <= the smallest size, got ks={self.ks}, sizes={self.sizes}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"] = self.train.to_dict()
        return out


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
    train = config.train
    saes = {
        f"k{k}_m{m}": BatchTopKSAE(d, m, k, seed=train.seed + m, backend=config.backend,
                                   dead_tokens_threshold=config.dead_tokens_threshold)
        for k in config.ks for m in config.sizes
    }
    training = Trainer(saes, train).train(generator.stream(train.total_tokens, train.batch_size, seed=train.seed + 1))
    held_out = generator.sample(config.eval_tokens, torch.Generator().manual_seed(train.seed + 2)).x
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
                backend=config.backend, learn_decoder_bias=learn_bias,
                train={"batch_size": rows.shape[0], "lr": config.meta_lr, "seed": train.seed,
                       "progress": train.progress},
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
