"""Shared benchmark plumbing: collect measured timings, write them once when the session ends.

A benchmark calls the ``record_benchmark`` fixture after running ``benchmark``; at session finish
every results file gets ``benchmarks/results/<name>.json`` (all fields) and ``<name>.md`` (a
table), each written atomically. Speed-ups are computed against the row of the same case marked
``baseline=True`` (the dense torch path, measured in the same run), never against stored numbers.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

from sae_fast.io.atomic import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# results file name -> list of measured rows; filled by record_benchmark, written at session end.
_RESULTS: dict[str, list[dict]] = defaultdict(list)


@pytest.fixture
def record_benchmark():
    """``record(benchmark, file=, case=, impl=, baseline=False, tokens=None, **params)``."""

    def record(benchmark, *, file: str, case: str, impl: str, baseline: bool = False,
               tokens: int | None = None, **params) -> None:
        stats = benchmark.stats.stats
        row = {
            "case": case,
            "impl": impl,
            "baseline": baseline,
            **params,
            "median_s": stats.median,
            "min_s": stats.min,
            "mean_s": stats.mean,
            "stddev_s": stats.stddev,
            "rounds": stats.rounds,
        }
        if tokens is not None:
            row["tokens"] = tokens
            row["tokens_per_s"] = tokens / stats.median
        _RESULTS[file].append(row)

    return record


def _add_speedups(rows: list[dict]) -> None:
    baselines = {row["case"]: row["median_s"] for row in rows if row["baseline"]}
    for row in rows:
        base = baselines.get(row["case"])
        row["speedup_vs_baseline"] = None if base is None else base / row["median_s"]


def _markdown(name: str, meta: dict, rows: list[dict]) -> str:
    with_memory = any(row.get("peak_step_memory_mib") is not None for row in rows)
    memory_header = " peak memory MiB |" if with_memory else ""
    lines = [
        f"# {name}",
        "",
        f"{meta['date']} · {meta['device']} · torch {meta['torch']} · {meta['torch_threads']} CPU threads",
        "",
        f"Command: `{meta['command']}`",
        "",
        *([f"Note: {meta['note']}", ""] if meta.get("note") else []),
        f"| case | impl | median ms | min ms | tokens/s | speed-up vs baseline |{memory_header}",
        "| --- | --- | ---: | ---: | ---: | ---: |" + (" ---: |" if with_memory else ""),
    ]
    for row in rows:
        tps = f"{row['tokens_per_s']:,.0f}" if "tokens_per_s" in row else ""
        speedup = row["speedup_vs_baseline"]
        speedup = "baseline" if row["baseline"] else ("" if speedup is None else f"{speedup:.2f}x")
        memory = f" {row.get('peak_step_memory_mib')} |" if with_memory else ""
        lines.append(
            f"| {row['case']} | {row['impl']} | {row['median_s'] * 1e3:.2f} | {row['min_s'] * 1e3:.2f} "
            f"| {tps} | {speedup} |{memory}"
        )
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session, exitstatus):
    if not _RESULTS:
        return
    machine = f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".replace("  ", " ")
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        # Where the timed work ran: the GPU when the suite used one, else this CPU.
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else machine,
        "command": " ".join(["python -m pytest", *sys.argv[1:]]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        # Conditions a reader must know to trust the numbers, e.g. "machine shared with another job".
        "note": os.environ.get("BENCH_NOTE"),
    }
    for name, rows in _RESULTS.items():
        _add_speedups(rows)
        atomic_write_text(RESULTS_DIR / f"{name}.json", json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        atomic_write_text(RESULTS_DIR / f"{name}.md", _markdown(name, meta, rows))
