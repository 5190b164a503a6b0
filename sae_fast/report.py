"""Markdown + PNG report of a training run: curves, L0 histograms and a comparison table.

Every number in the report is read from the measured inputs (training history, :class:`EvalResult`
objects, timings); nothing is typed in. Plots use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sae_fast.evaluation import EvalResult
from sae_fast.io.atomic import atomic_save_figure, atomic_write_bytes

TABLE_ROWS = (
    ("NMSE (held-out)", "nmse", "{:.4f}"),
    ("Fraction of variance explained", "fraction_variance_explained", "{:.4f}"),
    ("Mean L0 (held-out, eval mode)", "mean_l0", "{:.2f}"),
    ("Dead latents (never fired on held-out)", "dead_fraction", "{:.2%}"),
    ("CE loss, clean (nats)", "ce_clean", "{:.4f}"),
    ("CE loss, SAE spliced in (nats)", "ce_sae", "{:.4f}"),
    ("CE degradation (nats)", "ce_degradation", "{:.4f}"),
    ("CE loss recovered vs zero-ablation", "ce_loss_recovered_zero", "{:.2%}"),
    ("CE loss recovered vs mean-ablation", "ce_loss_recovered_mean", "{:.2%}"),
    ("Held-out tokens", "n_tokens", "{:d}"),
    ("CE sequences", "ce_sequences", "{:d}"),
)


def _format(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return pattern.format(value)


def comparison_table(results: Mapping[str, EvalResult]) -> str:
    """Markdown table with one column per SAE."""
    names = list(results)
    lines = ["| Metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key, pattern in TABLE_ROWS:
        lines.append(f"| {label} | " + " | ".join(_format(getattr(results[n], key), pattern) for n in names) + " |")
    return "\n".join(lines)


def _plot_training_curves(history: Mapping[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, MaxNLocator

    keys = [("nmse", "training-batch NMSE", "NMSE (log scale)"),
            ("threshold", "BatchTopK inference threshold theta", "theta"),
            ("dead_latents", "dead latents", "latents without a firing in the window")]
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
    for ax, (key, title, y_label) in zip(axes, keys):
        for index, (name, records) in enumerate(history.items()):
            points = [(r["tokens"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points), label=name, linewidth=1.4, linestyle=styles[index % len(styles)])
        ax.set_title(title)
        ax.set_xlabel("training tokens")
        ax.set_ylabel(y_label)
        # Token counts run to 1e9: 200M, not 200000000, and few enough ticks that they never touch.
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        if key == "nmse":
            ax.set_yscale("log")
        if key == "dead_latents":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(bottom=0, top=max(1, ax.get_ylim()[1]))  # a count: never below 0
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def _plot_l0_histograms(results: Mapping[str, EvalResult], path: Path) -> None:
    """One panel per SAE on a shared L0 axis: a TopK spike at k would flatten BatchTopK's spread in one panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(7, 1.2 + 1.9 * len(results)), sharex=True, squeeze=False)
    x_max = 0
    for ax, (name, result) in zip(axes[:, 0], results.items()):
        counts = result.l0_histogram
        total = sum(counts)
        # Show up to the 99.5th percentile; the tail (e.g. attention-sink tokens) is summarised in the title.
        cumulative, cut = 0, len(counts) - 1
        for level, count in enumerate(counts):
            cumulative += count
            if cumulative >= 0.995 * total:
                cut = level
                break
        x_max = max(x_max, cut + 1, 2 * math.ceil(result.mean_l0))
        ax.bar(range(len(counts)), [c / total for c in counts], width=1.0, color="tab:blue")
        ax.axvline(result.mean_l0, color="black", linewidth=1, linestyle="--")
        ax.set_title(f"{name}: mean L0 {result.mean_l0:.1f} (dashed), max {len(counts) - 1}", fontsize=10)
        ax.set_ylabel("fraction of tokens")
        ax.grid(alpha=0.3)
    axes[0, 0].set_xlim(-0.5, x_max + 0.5)
    axes[-1, 0].set_xlabel("active latents per held-out token (L0, eval mode); axis cut at the 99.5th percentile")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_report(
    directory: str | Path,
    *,
    title: str,
    history: Mapping[str, list[dict[str, Any]]],
    results: Mapping[str, EvalResult],
    setup: Mapping[str, Any],
    timings: Mapping[str, float],
    notes: list[str] | None = None,
) -> Path:
    """Write ``report.md``, ``training_curves.png``, ``l0_histograms.png`` and ``results.json``.

    Args:
        history: per SAE, the trainer's logged records (``TrainResult.history``).
        results: per SAE, its held-out :class:`EvalResult`.
        setup: measured/configured facts shown as a list (model, hook, token counts, SAE configs...).
        timings: wall-clock seconds per phase, as measured.
        notes: extra sentences (each must only restate measured values or settings).

    Returns:
        The path of ``report.md``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _plot_training_curves(history, directory / "training_curves.png")
    _plot_l0_histograms(results, directory / "l0_histograms.png")
    lines = [f"# {title}", "", "## Setup", ""]
    lines += [f"- **{key}**: {value}" for key, value in setup.items()]
    lines += ["", "## Held-out evaluation", "", comparison_table(results), ""]
    lines += ["BatchTopK is evaluated in eval mode, i.e. with its learned threshold theta "
              "(a JumpReLU), so its per-token L0 varies; TopK keeps exactly k per token.", ""]
    lines += ["![L0 histograms](l0_histograms.png)", "", "## Training", "",
              "![training curves](training_curves.png)", ""]
    final_rows = ["| SAE | steps | tokens | final batch NMSE | final batch L0 | dead latents |", "|---|---|---|---|---|---|"]
    for name, records in history.items():
        if records:
            last = records[-1]
            final_rows.append(f"| {name} | {last['step']} | {last['tokens']} | {last['nmse']:.4f} | "
                              f"{last['l0']:.2f} | {last['dead_latents']} |")
    lines += final_rows + ["", "## Wall time", ""]
    lines += [f"- {phase}: {seconds:.1f} s" for phase, seconds in timings.items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    report = directory / "report.md"
    atomic_write_bytes(report, ("\n".join(lines) + "\n").encode())
    payload = {"setup": dict(setup), "timings": dict(timings),
               "results": {name: result.to_dict() for name, result in results.items()},
               "history": {name: list(records) for name, records in history.items()}}
    atomic_write_bytes(directory / "results.json", json.dumps(payload, indent=2, default=str).encode())
    return report
