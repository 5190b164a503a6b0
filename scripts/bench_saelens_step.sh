#!/usr/bin/env bash
# The CPU step-floor benchmark (benchmarks/test_bench_step_floor.py) with its sae-lens row: runs in the
# sae-lens side venv (sae-lens pins transformer-lens 3, which the main .venv cannot hold), importing
# this checkout's sae_fast and its built C++ extension (which links no torch, so it loads there).
# Builds the venv on first use (scripts/saelens_venv.sh). Extra arguments go to pytest, e.g.
# --update-results to rewrite benchmarks/results/step_floor.*.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/saelens_venv.sh
ensure_saelens_venv pytest-benchmark
PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} \
  "$SAELENS_PY" -m pytest benchmarks/test_bench_step_floor.py -q -p no:cacheprovider \
  --benchmark-columns=min,median,rounds "$@"
