"""The benchmark grid's cases and the loop that times them under the budget.

The target case (m = 24576, k = 32 at the paper's sizes) runs first, so that a short budget still
measures what the targets are judged on; the rest follow by growing m. Before each case the loop
asks the budget for an estimate scaled from the last case (cost grows about linearly in m); a case
that does not fit is listed as skipped with the reason, and one that fails (out of memory, say) is
listed with its error, and the loop goes on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from gpu_check.budget import Budget, Skipped
from gpu_check.config import CheckConfig
from gpu_check.timing import free_device_memory

MIN_CASE_S = 2.0


def grid_cases(cfg: CheckConfig, ks: tuple[int, ...] | None = None) -> list[tuple[int, int]]:
    """``(m, k)`` pairs, the target case first."""
    cases = [(m, k) for m in cfg.latent_counts for k in (ks or cfg.ks)]
    return sorted(cases, key=lambda case: (case != cfg.target_case, case))


def run_cases(
    cfg: CheckConfig, budget: Budget, cases: list[tuple[int, int]], measure: Callable[[int, int], list[dict]]
) -> dict:  # fmt: skip
    """``{"rows": [...], "skipped_cases": [...], "case_errors": [...]}`` of ``measure(m, k)`` over ``cases``."""
    rows, skipped, errors = [], [], []
    seconds_per_latent = None
    for m, k in cases:
        estimate = MIN_CASE_S if seconds_per_latent is None else max(MIN_CASE_S, 1.5 * seconds_per_latent * m)
        try:
            budget.require(estimate, f"m={m} k={k}")
        except Skipped as out:
            skipped.append(str(out))
            continue
        begin = time.monotonic()
        try:
            rows += measure(m, k)
        except Exception as error:  # one case's failure (e.g. out of memory) must not end the grid
            errors.append({"m": m, "k": k, "error": f"{type(error).__name__}: {error}"[:500],
                           "traceback": traceback.format_exc(limit=4)[-1500:]})  # fmt: skip
        finally:
            free_device_memory(cfg.device)
        seconds_per_latent = (time.monotonic() - begin) / m  # the latest case: the first one also compiled
    return {"rows": rows, "skipped_cases": skipped, "case_errors": errors}


def speedups(rows: list[dict], baseline_impl: str) -> None:
    """Adds ``speedup`` (the baseline's median over the row's) to rows of the same ``m``, ``k``."""
    base = {(row["m"], row["k"]): row["median_s"] for row in rows if row["impl"] == baseline_impl}
    for row in rows:
        reference = base.get((row["m"], row["k"]))
        row["speedup"] = None if reference is None else reference / row["median_s"]


def target_row(rows: list[dict], cfg: CheckConfig, impl: str) -> dict | None:
    m, k = cfg.target_case
    return next((row for row in rows if (row["m"], row["k"], row["impl"]) == (m, k, impl)), None)
