"""Stage ``kernel_tests``: the repository's Triton kernel tests, run on CUDA with the interpreter off.

These test files check each kernel against its plain-torch reference (selection bit for bit, with
ties, empty rows and negatives; encode + select with the fused aux copy; the sparse products; the
nested decode; max cosine) and pick the compiled kernels when CUDA is there and TRITON_INTERPRET is
unset. Here they run in a child pytest, so a crash in a kernel is recorded and the check goes on.
The dry run runs one small case of each file under the interpreter: enough to keep this stage's
plumbing from rotting, without repeating the suite's own run of these files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from gpu_check.config import REPO_ROOT, CheckConfig
from gpu_check.targets import target

NEEDS_S = 30.0
TEST_FILES = (
    "tests/test_triton_select.py",
    "tests/test_triton_encode.py",
    "tests/test_triton_products.py",
    "tests/test_max_cosine.py",
)
DRY_SELECTION = (
    "test_batch_topk_matches_reference and shape1-ties-dtype0 or test_fused_histogram_equals_unfused_selection"
    " or test_sparse_decode and 9-40-37-30-dtype0 or test_ties_and_zero_rows_follow_the_convention"
)
"""One small case per file for the dry run (the interpreter takes seconds per case; the suite runs them all)."""
TIME_SHARE = 0.35
"""At most this share of what is left of the budget: the benchmark grid must still have time after it."""


def _counts(summary: str) -> dict[str, int]:
    """``{"passed": 52, "failed": 1, ...}`` from pytest's last line."""
    found = re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", summary)
    return {word: int(number) for number, word in found}


def run(cfg: CheckConfig, context: dict) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if cfg.dry:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)  # the compiled kernels, not the interpreter
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_FILES]
    # On the GPU: name every failure and error, and the slowest tests (compilation shows up there).
    command += ["-x", "-k", DRY_SELECTION] if cfg.dry else ["-rfE", "--durations=8"]
    timeout = max(context["budget"].remaining() * TIME_SHARE, NEEDS_S)
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        tail = expired.stdout or b""
        tail = (tail.decode(errors="replace") if isinstance(tail, bytes) else tail)[-3000:]
        raise RuntimeError(f"the kernel tests ran past their {timeout:.0f} s share of the budget:\n{tail}") from None
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    counts = _counts(summary)
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    outcome = {
        "params": {"command": " ".join(["python", *command[1:]]), "interpreter": cfg.dry},
        "summary": summary,
        "counts": counts,
        "failures": failures[:50],
        "targets": [target(
            "Triton kernel tests against their references" + (" (interpreter)" if cfg.dry else " (CUDA)"),
            "all pass", summary, result.returncode == 0 and counts.get("passed", 0) > 0,
        )],
    }  # fmt: skip
    if result.returncode != 0 or not cfg.dry:
        outcome["output_tail"] = (result.stdout + result.stderr)[-4000:]
    return outcome
