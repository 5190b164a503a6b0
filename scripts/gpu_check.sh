#!/usr/bin/env bash
# The one-call GPU check (docs/gpu_check.md): Triton kernel tests on CUDA, the two ceilings, and the
# benchmark grid at the paper's sizes, within GPU_CHECK_BUDGET_S seconds (default 480).
#
#   bash scripts/gpu_check.sh                   # on a CUDA machine; results in $OUT (or benchmarks/results/local/gpu_check/)
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh   # the same stages on CPU at tiny sizes, Triton's interpreter
#
# It installs nothing, downloads nothing (synthetic data) and builds nothing: the C++ extension only
# serves CPU tensors, which the CUDA check does not use. Python: $PYTHON, else .venv/bin/python, else python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import torch, triton" 2>/dev/null; then
  echo "gpu_check: $PYTHON cannot import torch and triton; the check needs both and installs nothing" >&2
  exit 2
fi
if [[ "${GPU_CHECK_DRY:-0}" == "1" ]]; then
  export TRITON_INTERPRET=1   # must be set before any kernel module is imported
else
  unset TRITON_INTERPRET      # the compiled kernels, never the interpreter
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m gpu_check "$@"
