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
    "decoder_cos_to_init_medium": "median decoder cosine to its initialisation, medium",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return "n/a" if value is None else str(value)


def plot_convergence(convergence: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(int(s) for s in convergence)
    keys = list(CONVERGENCE_LABELS)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, key in zip(axes.flat, keys):
        ax.plot(steps, [convergence[str(s)][key] for s in steps], marker="o")
        ax.set_xscale("log")
        ax.set(xlabel="optimiser steps", title=CONVERGENCE_LABELS[key].split(" (")[0])
        ax.title.set_fontsize(8)
    axes.flat[-1].axis("off")
    fig.suptitle("Convergence study: stitching statistics against training steps")
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


def write_report(out: Path, document: dict[str, Any], timings: dict[str, float]) -> Path:
    convergence = document["convergence"]
    plot_convergence(convergence, out / "convergence.png")
    steps = sorted(int(s) for s in convergence)
    lines = [
        "# Reproducing \"Sparse Autoencoders Do Not Find Canonical Units of Analysis\" offline",
        "",
        f"Model `{document['config']['model']}` at `{document['config']['hook_name']}`, "
        f"{document['data']['train_rows']} distinct training tokens, {document['data']['eval_rows']} held-out "
        f"evaluation tokens (never trained on), the paper's recipe (layer_norm inputs, aux loss) at batch "
        f"{document['config']['batch_size']}, k={document['config']['k']}, {steps[-1]} optimiser steps. "
        "Every number below was measured by this run; `claims.json` holds them all.",
        "",
        "## Claims",
        "",
        *claims_table(document["claims"]),
    ]
    lines += ["", "## Convergence study", "",
              "Each statistic on the held-out tokens at each snapshot of the same training run "
              "(`convergence.png`). Where the last columns still move, the SAEs have not converged and the "
              "claim's final value is not yet known.", "",
              "| statistic | " + " | ".join(f"step {s}" for s in steps) + " |",
              "|---|" + "---|" * len(steps)]
    for key, label in CONVERGENCE_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(convergence[str(s)][key]) for s in steps) + " |")
    lines += ["", "![convergence](convergence.png)", "", "## Figures", ""]
    for png in sorted(out.rglob("*.png")):
        if png.name != "convergence.png":
            lines.append(f"- [{png.relative_to(out)}]({png.relative_to(out)})")
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()]
    lines += ["", "Configuration: `" + json.dumps(document["config"]) + "`", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
