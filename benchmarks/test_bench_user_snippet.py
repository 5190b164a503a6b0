"""The library as a user runs it: the README's training step with no environment variables set,
against the same step under the Makefile's settings (``OMP_WAIT_POLICY=PASSIVE``), in one run.

Each row is a fresh interpreter running ``user_snippet_step.py`` (d_in 64, d_sae 512, 1024 tokens,
k 32, the default backend), so each starts OpenMP under its own environment:
- ``Makefile variables``: OMP_WAIT_POLICY=PASSIVE, the baseline;
- ``no variables, sae_fast first``: nothing set; ``import sae_fast`` comes before torch, so sae_fast
  sets the passive wait policy itself (:mod:`sae_fast.openmp_policy`);
- ``no variables, torch first``: nothing set and torch imported first, so OpenMP keeps its spinning
  default (sae_fast then warns once).
The speed-up column is the baseline's median over the row's: 0.83x or more is within 1.2x.

Run: ``.venv/bin/python -m pytest -q benchmarks/test_bench_user_snippet.py`` (~20 s).
Results: benchmarks/results/local/user_snippet.* (``--update-results``: benchmarks/results/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import record_times

SCRIPT = Path(__file__).resolve().parent / "user_snippet_step.py"
CASE = "README snippet: n=1024 d_in=64 d_sae=512 k=32"
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")
ROWS = {
    "Makefile variables (OMP_WAIT_POLICY=PASSIVE)": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "no variables, sae_fast imported first": ({}, []),
    "no variables, torch imported first": ({}, ["--torch-first"]),
}


@pytest.mark.parametrize("impl", list(ROWS))
def test_bench_user_snippet(impl):
    settings, flags = ROWS[impl]
    env = {key: value for key, value in os.environ.items() if key not in VARIABLES} | settings
    done = subprocess.run([sys.executable, str(SCRIPT), *flags], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    record_times(file="user_snippet", case=CASE, impl=impl, baseline=impl.startswith("Makefile"), **timings)
