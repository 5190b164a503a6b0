"""Shared benchmark plumbing: collect measured timings, write them once when the session ends; sizes.

A benchmark calls the ``record_benchmark`` fixture after running ``benchmark``; at session finish
every results file gets ``<name>.json`` (all fields) and ``<name>.md`` (a table), each written
atomically. Speed-ups are computed against the row of the same case marked ``baseline=True`` (the
dense torch path, measured in the same run), never against stored numbers.

Where results go:
    ``benchmarks/results/local/`` (untracked, in .gitignore) by default, so a trial run never
    rewrites the committed tables; ``--update-results`` (or ``BENCH_UPDATE_RESULTS=1``) writes the
    committed ``benchmarks/results/`` instead.

Sizes:
    a benchmark marked ``@pytest.mark.sizes(DEFAULT_SIZES)`` takes a ``size`` argument, a tuple of
    ints, and runs once per size: its defaults, or those of ``--bench-sizes 4096x24576,1024x3072``
    (``x`` joins one size's numbers, commas separate sizes). A size with another count of numbers
    than the benchmark's defaults (e.g. ``NxM`` for a benchmark of ``m1 x m0 x d`` shapes) is skipped,
    with the reason shown.
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
"""The committed tables: written only with --update-results or BENCH_UPDATE_RESULTS=1."""
LOCAL_RESULTS_DIR = RESULTS_DIR / "local"
"""Where a run writes by default (untracked)."""

# results file name -> list of measured rows; filled by record_benchmark, written at session end.
_RESULTS: dict[str, list[dict]] = defaultdict(list)
# (results file, case) -> why its baseline row is missing (e.g. sae-lens not installed).
_MISSING_BASELINES: dict[tuple[str, str], str] = {}


def pytest_addoption(parser):
    group = parser.getgroup("sae_fast benchmarks")
    group.addoption("--update-results", action="store_true", default=False,
                    help=f"write the committed tables in {RESULTS_DIR} (default: {LOCAL_RESULTS_DIR}); "
                         "BENCH_UPDATE_RESULTS=1 does the same")
    group.addoption("--bench-sizes", default=None, metavar="AxB[,CxD...]",
                    help="sizes of the benchmarks marked with sizes, e.g. 4096x24576,1024x3072 (tokens x latents); "
                         "default: each benchmark's own")


def pytest_configure(config):
    config.addinivalue_line("markers", "sizes(defaults): run once per size (--bench-sizes or these defaults)")


def parse_sizes(text: str) -> list[tuple[int, ...]]:
    """``"4096x24576,1024x3072"`` -> ``[(4096, 24576), (1024, 3072)]``."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            size = tuple(int(number) for number in item.lower().split("x"))
        except ValueError:
            size = ()
        if not size or min(size) < 1:
            raise pytest.UsageError(f"--bench-sizes: {item!r} is not positive integers joined by x, e.g. 4096x24576")
        sizes.append(size)
    if not sizes:
        raise pytest.UsageError(f"--bench-sizes {text!r} names no size; e.g. --bench-sizes 4096x24576,1024x3072")
    return sizes


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("sizes")
    if marker is None:
        return
    defaults = [tuple(size) for size in marker.args[0]]
    option = metafunc.config.getoption("--bench-sizes")
    params = []
    for size in parse_sizes(option) if option else defaults:
        mismatch = len(size) != len(defaults[0])
        reason = f"this benchmark's sizes have {len(defaults[0])} numbers, e.g. {'x'.join(map(str, defaults[0]))}"
        params.append(pytest.param(size, id="x".join(map(str, size)),
                                   marks=[pytest.mark.skip(reason=reason)] if mismatch else []))
    metafunc.parametrize("size", params)


def results_dir(config) -> Path:
    """The committed tables when asked for, else the untracked local folder."""
    if config.getoption("--update-results") or os.environ.get("BENCH_UPDATE_RESULTS") == "1":
        return RESULTS_DIR
    return LOCAL_RESULTS_DIR


def record_times(*, file: str, case: str, impl: str, median_s: float, min_s: float, mean_s: float,
                 stddev_s: float, rounds: int, baseline: bool = False, tokens: int | None = None, **params) -> None:
    """Add one measured row to results file ``file`` (written when the session ends)."""
    row = {"case": case, "impl": impl, "baseline": baseline, **params, "median_s": median_s, "min_s": min_s,
           "mean_s": mean_s, "stddev_s": stddev_s, "rounds": rounds}
    if tokens is not None:
        row["tokens"] = tokens
        row["tokens_per_s"] = tokens / median_s
    _RESULTS[file].append(row)


def record_missing_baseline(*, file: str, case: str, reason: str) -> None:
    """Say why a case has no baseline row, so its table shows the reason instead of a blank speed-up."""
    _MISSING_BASELINES[(file, case)] = reason


@pytest.fixture
def record_benchmark():
    """``record(benchmark, file=, case=, impl=, baseline=False, tokens=None, **params)``."""

    def record(benchmark, *, file: str, case: str, impl: str, baseline: bool = False,
               tokens: int | None = None, **params) -> None:
        stats = benchmark.stats.stats
        record_times(file=file, case=case, impl=impl, baseline=baseline, tokens=tokens, median_s=stats.median,
                     min_s=stats.min, mean_s=stats.mean, stddev_s=stats.stddev, rounds=stats.rounds, **params)

    return record


def _add_speedups(rows: list[dict]) -> None:
    """Speed-up against the case's ``baseline`` row, and time as a multiple of its ``floor`` row if any."""
    baselines = {row["case"]: row["median_s"] for row in rows if row["baseline"]}
    floors = {row["case"]: row["median_s"] for row in rows if row.get("floor")}
    for row in rows:
        base = baselines.get(row["case"])
        row["speedup_vs_baseline"] = None if base is None else base / row["median_s"]
        if floors:
            floor = floors.get(row["case"])
            row["times_floor"] = None if floor is None else row["median_s"] / floor


def _markdown(name: str, meta: dict, rows: list[dict]) -> str:
    with_memory = any(row.get("peak_step_memory_mib") is not None for row in rows)
    with_floor = any("times_floor" in row for row in rows)
    memory_header = (" x floor |" if with_floor else "") + (" peak memory MiB |" if with_memory else "")
    lines = [
        f"# {name}",
        "",
        f"{meta['date']} · {meta['device']} · torch {meta['torch']} · {meta['torch_threads']} CPU threads",
        "",
        f"Command: `{meta['command']}`",
        "",
        *([f"Note: {meta['note']}", ""] if meta.get("note") else []),
        f"| case | impl | median ms | min ms | tokens/s | speed-up vs baseline |{memory_header}",
        "| --- | --- | ---: | ---: | ---: | ---: |" + " ---: |" * (with_floor + with_memory),
    ]
    for row in rows:
        tps = f"{row['tokens_per_s']:,.0f}" if "tokens_per_s" in row else ""
        speedup = row["speedup_vs_baseline"]
        speedup = "baseline" if row["baseline"] else ("no baseline (below)" if speedup is None else f"{speedup:.2f}x")
        floor = row.get("times_floor")
        memory = (f" {'' if floor is None else f'{floor:.2f}x'} |" if with_floor else "") + (
            f" {row.get('peak_step_memory_mib')} |" if with_memory else ""
        )
        lines.append(
            f"| {row['case']} | {row['impl']} | {row['median_s'] * 1e3:.2f} | {row['min_s'] * 1e3:.2f} "
            f"| {tps} | {speedup} |{memory}"
        )
    with_baseline = {row["case"] for row in rows if row["baseline"]}
    missing = dict.fromkeys(row["case"] for row in rows if row["case"] not in with_baseline)
    if missing:
        lines.append("")
        lines += [f"No baseline for {case}: {_MISSING_BASELINES.get((name, case), 'none was measured in this run')}."
                  for case in missing]
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
    directory = results_dir(session.config)
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in _RESULTS.items():
        _add_speedups(rows)
        atomic_write_text(directory / f"{name}.json", json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        atomic_write_text(directory / f"{name}.md", _markdown(name, meta, rows))
