"""PNG figures of the meta-SAE workflow (Fig. 6 max-cosine distributions, Fig. 23 substitution)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sae_fast.meta.compare import MaxCosineDistribution
from sae_fast.meta.substitute import SubstitutionResult
from sae_fast.io.atomic import atomic_save_figure


def plot_meta_report(
    path: str | os.PathLike, distributions: Mapping[str, MaxCosineDistribution],
    substitution: SubstitutionResult | None = None, title: str = "meta-SAE",
) -> None:
    """Left: max-cosine histograms of meta-latents vs each reference SAE. Right: FVE of the variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if substitution is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    for name, dist in distributions.items():
        ax.hist(dist.max_cos.clamp(-1, 1).numpy(), bins=40, range=(0, 1), histtype="step", linewidth=1.5,
                label=f"{name} ({dist.d_reference} latents), median {float(dist.max_cos.median()):.2f}")
    ax.set(xlabel="max cosine of a meta-latent to any SAE latent", ylabel="meta-latents",
           title="meta-latents vs SAE latents (Fig. 6)")
    ax.legend(fontsize=7)
    if substitution is not None:
        ax = axes[0, 1]
        names = ["trained", "own decoder,\nencoder retrained", "nearest SAE\nlatents", "random\ndirections"]
        values = [substitution.fve_original, substitution.fve_original_retrained, substitution.fve_substituted,
                  substitution.fve_random]
        bars = ax.bar(names, values, color=["#777", "#47a", "#4a7", "#c55"])
        for bar, value in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set(ylabel="fraction of variance of decoder rows explained",
               title="decoder replaced, encoder retrained (Fig. 23)")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)
