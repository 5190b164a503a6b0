"""Figures and JSON records of the stitching analyses (the example scripts only parse arguments).

Every ``plot_*`` takes a result dataclass, writes ``<stem>.png`` and ``<stem>.json`` into ``out_dir``
atomically, and returns the two paths.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sae_fast.io.atomic import atomic_save_figure, atomic_write_bytes
from sae_fast.stitching.activation_similarity import ActivationDecoderSimilarity
from sae_fast.stitching.histogram import MaxCosineHistogram, ReconstructionFractionMatrix
from sae_fast.stitching.interpolation import InterpolationPath
from sae_fast.stitching.novel_activity import NovelLatentMSE
from sae_fast.stitching.roc import RocCurve
from sae_fast.stitching.single_latent import SingleLatentEffects


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tensors and containers as plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def save_json(obj: Any, path: str | Path, meta: dict | None = None) -> Path:
    path = Path(path)
    payload = {"meta": meta or {}, "result": to_jsonable(obj)}

    atomic_write_bytes(path, json.dumps(payload).encode())
    return path


def _figure(out_dir, stem, result, meta, draw) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = draw(plt)
    png = Path(out_dir) / f"{stem}.png"
    atomic_save_figure(fig, png, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return png, save_json(result, Path(out_dir) / f"{stem}.json", meta)


def plot_single_latent_effects(r: SingleLatentEffects, out_dir, stem="fig4_delta_mse_vs_max_cos", meta=None):
    """Fig. 4: ΔMSE of inserting each latent vs its max cosine (latents that never fire left out)."""
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        keep = r.firing_counts > 0
        ax.scatter(r.max_cos[keep].cpu(), r.delta_mse[keep].cpu(), s=3, alpha=0.5)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(r.threshold, color="r", ls="--", lw=1, label=f"θ = {r.threshold}")
        ax.set(xlabel="max decoder cosine to smaller SAE", ylabel="Δ MSE when inserted")
        ax.legend()
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def plot_interpolation(paths: dict[str, InterpolationPath], out_dir, stem="fig5_interpolation", meta=None):
    """Fig. 5: MSE and L0 against the number of features along each transition."""
    def draw(plt):
        fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        for label, p in paths.items():
            ax0.plot(p.n_features, p.mse, label=label, lw=1)
            ax1.plot(p.n_features, p.l0, label=label, lw=1)
        ax0.set(ylabel="MSE")
        ax1.set(ylabel="L0", xlabel="total number of features")
        ax0.legend()
        return fig, (ax0, ax1)
    return _figure(out_dir, stem, paths, meta, draw)


def plot_max_cosine_histogram(r: MaxCosineHistogram, out_dir, stem="fig10_max_cos_histogram", meta=None):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        edges = r.edges.cpu()
        ax.bar(edges[:-1], r.counts.cpu(), width=edges[1:] - edges[:-1], align="edge")
        ax.axvline(r.threshold, color="r", ls="--", lw=1, label=f"θ = {r.threshold} ({r.n_novel} novel)")
        ax.set(xlabel="max decoder cosine to smaller SAE", ylabel="latents")
        ax.legend()
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def plot_activation_similarity(r: ActivationDecoderSimilarity, out_dir, stem="fig11_activation_vs_decoder", meta=None):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(r.decoder_cos.cpu(), r.activation_cos.cpu(), s=3, alpha=0.5)
        ax.set(xlabel="decoder cosine similarity", ylabel="activation cosine similarity",
               title=f"R² = {r.r2:.3f} over decoder cos > {r.min_decoder_cos} (n = {r.n_pairs_in_r2})")
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def plot_novel_latent_mse(r: NovelLatentMSE, out_dir, stem="fig14_novel_latent_mse", labels=("small", "large"), meta=None):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        data = [r.small_inactive, r.small_active, r.large_inactive, r.large_active]
        names = [f"{labels[0]}\ninactive", f"{labels[0]}\nactive", f"{labels[1]}\ninactive", f"{labels[1]}\nactive"]
        ax.boxplot([d.cpu().numpy() for d in data], showfliers=False)
        ax.set_xticks(range(1, 5), names)
        ax.set(ylabel="per-token MSE", title=f"{r.latents.numel()} novel latents (θ = {r.threshold})")
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def plot_roc(r: RocCurve, out_dir, stem="fig16_roc", meta=None):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(r.fpr.cpu(), r.tpr.cpu(), label=f"AUC = {r.auc:.3f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.5)
        ax.scatter([r.fpr_at_threshold], [r.tpr_at_threshold], color="r", zorder=3, label=f"θ = {r.threshold}")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="max cos predicts ΔMSE < 0")
        ax.legend()
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def plot_reconstruction_fraction(r: ReconstructionFractionMatrix, out_dir, stem="fig19_reconstruction_fraction", meta=None):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(1.2 * len(r.labels) + 2, 1.2 * len(r.labels) + 1))
        im = ax.imshow(r.fraction.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(r.labels)), r.labels, rotation=45)
        ax.set_yticks(range(len(r.labels)), r.labels)
        for i in range(len(r.labels)):
            for j in range(len(r.labels)):
                ax.text(j, i, f"{float(r.fraction[i, j]):.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set(xlabel="compared against", ylabel="latents of")
        fig.colorbar(im, ax=ax, label=f"fraction with max cos ≥ {r.threshold}")
        return fig, ax
    return _figure(out_dir, stem, r, meta, draw)


def load_activation_file(path: str | Path, max_tokens: int | None = None, dtype=torch.float32) -> Tensor:
    """An activation matrix ``[n, d]`` from ``.pt``/``.npy``/``.safetensors`` (first tensor), flattened.

    Scripts take :func:`sae_fast.commands.inputs.load_activations`, which also reads activation caches.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no activations file at {path}")
    if path.suffix == ".npy":
        import numpy as np

        x = torch.from_numpy(np.load(path, mmap_mode="r")[: max_tokens or None].copy())
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        x = tensors["activations"] if "activations" in tensors else next(iter(tensors.values()))
    else:
        x = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(x, dict):
            x = x["activations"] if "activations" in x else next(iter(x.values()))
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError(f"{path} must hold an activation tensor [..., d], got {type(x).__name__}")
    x = x.reshape(-1, x.shape[-1])
    return x[: max_tokens or None].to(dtype)


def load_sae(path: str | Path, device: str = "cpu"):
    """An SAE saved by the training pipeline, via ``sae_fast.load_pretrained``, in eval mode."""
    from sae_fast.io import load_pretrained

    return load_pretrained(str(path), device=device).eval()
