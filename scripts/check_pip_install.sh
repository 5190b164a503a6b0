#!/usr/bin/env bash
# Check that a plain, isolated `pip install` of this checkout builds and imports the C++ extension:
# pip must find the build requirements (pybind11) in pyproject.toml, since setup.py imports it.
#
# The wheel is built with build isolation (setuptools, wheel and pybind11 come from PyPI into a
# throwaway build environment) and installed with --no-deps into a scratch folder, then imported
# with the interpreter of .venv, which already has torch. Nothing here resolves sae_fast's runtime
# dependencies, so no install can pull a second (multi-GB CUDA) torch.
#
#   PYTHON=cmd   interpreter with torch that builds and imports it (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PY=$("$PY" -c 'import sys; print(sys.executable)')  # absolute: the import check runs elsewhere
ROOT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

"$PY" -m pip wheel -q --no-deps --wheel-dir "$WORK/wheel" "$ROOT"
"$PY" -m pip install -q --no-deps --no-compile --target "$WORK/target" "$WORK"/wheel/sae_fast-*.whl

# From $WORK, so that neither the checkout nor an editable install shadows the installed copy.
cd "$WORK"
PYTHONPATH="$WORK/target" "$PY" - "$WORK/target" <<'PY'
import sys
from pathlib import Path

import sae_fast
import sae_fast._C

target = Path(sys.argv[1]).resolve()
for module in (sae_fast, sae_fast._C):
    where = Path(module.__file__).resolve()
    assert target in where.parents, f"{module.__name__} was imported from {where}, not from the wheel in {target}"
print(f"[pip-install] the wheel builds and imports sae_fast._C ({Path(sae_fast._C.__file__).name})")
PY
echo "[pip-install] done in $(( $(date +%s) - start ))s"
