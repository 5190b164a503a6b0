"""``outputs/reproduce/report.md``: every claim side by side (paper, ours, holds) and the convergence study."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from sae_fast.io.atomic import atomic_write_bytes, atomic_write_text

CONVERGENCE_LABELS = {
    "novel_fraction": "novel fraction (target ≤ 0.60, paper 0.43)",
    "same_size_reconstruction_fraction_small": "same size, other seed: reconstruction fraction, small (target ≥ 0.80)",
    "same_size_reconstruction_fraction_medium": "same size, other seed: reconstruction fraction, medium",
    "add_novel_mse_change": "relative MSE change adding all novel latents (target < 0, paper ≈ -0.10)",
    "heldout_nmse_medium": "held-out NMSE (input space), medium",
    "heldout_normalized_mse_medium": "held-out MSE in the normalised space, medium",
    "heldout_l0_small": "held-out L0, small (Table 2: 35.2 at 768)",
    "heldout_l0_medium": "held-out L0, medium (Table 2: 39.5 at 1536)",
    "heldout_l0_large": "held-out L0, large (Table 2: 42.4 at 3072)",
    "decoder_cos_to_init_medium": "median decoder cosine to its initialisation, medium",
}
FAMILY_TITLES = {"relu": "ReLU + L1 (the paper's stitching family)", "batchtopk": "BatchTopK"}
STITCHING_CLAIMS = ("novel_fraction", "same_size_reconstruction_fraction", "add_novel_mse_change",
                    "fig5_both_phases_lower_mse", "r_squared_activation_vs_decoder", "novelty_predicts_mse_effect_auc")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return "n/a" if value is None else str(value)


def plot_convergence(families: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Every convergence statistic against steps, one line per family (``{family: {step: {key: value}}}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(20, 7))
    for ax, key in zip(axes.flat, CONVERGENCE_LABELS):
        for family, convergence in families.items():
            steps = sorted(int(s) for s in convergence)
            ax.plot(steps, [convergence[str(s)][key] for s in steps], marker="o", label=FAMILY_TITLES[family])
        ax.set_xscale("log")
        ax.set(xlabel="optimiser steps", title=CONVERGENCE_LABELS[key].split(" (")[0])
        ax.title.set_fontsize(8)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Convergence study: stitching statistics against training steps, both families")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def claims_table(claims: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown table of ``claims`` (paper, ours, target, holds), one line per row."""
    lines = ["| claim | paper | ours | target | holds |", "|---|---|---|---|---|"]
    for name, claim in claims.items():
        holds = {True: "yes", False: "**no**", None: "n/a"}[claim["holds"]]
        lines.append(f"| {name}: {claim['description']} | {_fmt(claim['paper'])} | {_fmt(claim['measured'])} | "
                     f"{claim['target']} | {holds} |")
    return lines


def _convergence_table(convergence: dict[str, dict[str, float]]) -> list[str]:
    steps = sorted(int(s) for s in convergence)
    lines = ["| statistic | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for key, label in CONVERGENCE_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(convergence[str(s)][key]) for s in steps) + " |")
    return lines


def _families_table(document: dict[str, Any]) -> list[str]:
    """The stitching claims of both families side by side."""
    relu, btk = document["claims"], document["batchtopk_family"]["claims"]
    mark = {True: "yes", False: "**no**", None: "n/a"}
    lines = ["| claim | paper (ReLU/L1, GPT-2) | target | ReLU + L1 | holds | BatchTopK | holds |",
             "|---|---|---|---|---|---|---|"]
    for name in STITCHING_CLAIMS:
        a, b = relu[name], btk[name]
        lines.append(f"| {a['description']} | {_fmt(a['paper'])} | {a['target']} | {_fmt(a['measured'])} | "
                     f"{mark[a['holds']]} | {_fmt(b['measured'])} | {mark[b['holds']]} |")
    return lines


def _distinct_lines(study: dict[str, Any] | None) -> list[str]:
    if study is None:
        return ["Skipped (`--distinct-rows 0`, or no fewer rows than the cache holds)."]
    rows = study["distinct_rows"]
    lines = [f"The ReLU/L1 family's small and medium SAEs after {study['step']} steps "
             f"({study['tokens_seen']} tokens seen), trained on {rows['subset']} distinct tokens "
             f"({study['passes']['subset']:.2f} passes) against all {rows['full']} "
             f"({study['passes']['full']:.2f} passes), from the same initialisation:", "",
             f"| statistic | {rows['subset']} distinct | {rows['full']} distinct |", "|---|---|---|"]
    for key in study["full"]:
        lines.append(f"| {CONVERGENCE_LABELS.get(key, key)} | {_fmt(study['subset'][key])} | "
                     f"{_fmt(study['full'][key])} |")
    return lines


def write_report(out: Path, document: dict[str, Any], timings: dict[str, float]) -> Path:
    families = {"relu": document["convergence"], "batchtopk": document["batchtopk_family"]["convergence"]}
    plot_convergence(families, out / "convergence.png")
    config = document["config"]
    steps = sorted(int(s) for s in document["convergence"])
    coefficients = ", ".join(f"{name} {value:.3g}" for name, value in document["l1_coefficients"].items())
    lines = [
        "# Reproducing \"Sparse Autoencoders Do Not Find Canonical Units of Analysis\" offline",
        "",
        f"Model `{config['model']}` at `{config['hook_name']}`, {document['data']['train_rows']} distinct "
        f"training tokens, {document['data']['eval_rows']} held-out evaluation tokens (never trained on), batch "
        f"{config['batch_size']}, lr {config['lr']}, {steps[-1]} optimiser steps. Two families trained in one "
        "pass over the same batches: the paper's stitching family, ReLU SAEs with an L1 penalty "
        f"({config['l1_normalization']} inputs, each size's L1 coefficient steered to Table 2's L0), and "
        f"BatchTopK SAEs (k={config['k']}, layer_norm inputs, aux loss), both at "
        f"{config['small']} and {config['medium']} latents with two seeds and {config['large']} with one. "
        "Every number below was measured by this run; `claims.json` holds them all.",
        "",
        "## Claims (stitching and meta-SAE on the ReLU/L1 family; section 6 on BatchTopK)",
        "",
        *claims_table(document["claims"]),
        "",
        f"L1 coefficients the steering settled at: {coefficients}.",
        "",
        "## The stitching claims on both families",
        "",
        *_families_table(document),
    ]
    for family, convergence in families.items():
        lines += ["", f"## Convergence study: {FAMILY_TITLES[family]}", "",
                  "Each statistic on the held-out tokens at each snapshot of the same training run "
                  "(`convergence.png`). Where the last columns still move, the SAEs have not converged and the "
                  "claim's final value is not yet known.", "", *_convergence_table(convergence)]
    lines += ["", "## Distinct tokens at a fixed step budget", "", *_distinct_lines(document.get("distinct_tokens"))]
    lines += ["", "![convergence](convergence.png)", "", "## Figures", ""]
    for png in sorted(out.rglob("*.png")):
        if png.name != "convergence.png":
            lines.append(f"- [{png.relative_to(out)}]({png.relative_to(out)})")
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()]
    lines += ["", "Configuration: `" + json.dumps(config) + "`", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
