#!/usr/bin/env bash
# Check that a plain, isolated `pip install` of this checkout builds and imports the C++ extension:
# pip must find the build requirements (pybind11) in pyproject.toml, since setup.py imports it.
# Then check the wheel's dependencies from its METADATA (no second install): `pip install .` must
# bring no Triton, test tools or language-model stack, and `pip install .[test]` everything the
# test suite imports.
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
"$PY" - "$WORK"/wheel/sae_fast-*.whl <<'PY'
import re
import sys
import zipfile
from email.parser import Parser

with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(name).decode())
requires: dict[str, set[str]] = {}
for line in metadata.get_all("Requires-Dist") or []:
    extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", line)
    package = re.split(r"[\s<>=!~;\[(]", line, maxsplit=1)[0].lower().replace("_", "-")
    requires.setdefault(extra.group(1) if extra else "core", set()).add(package)
core, test = requires.get("core", set()), requires.get("test", set())
heavy = core & {"triton", "pytest", "pytest-benchmark", "datasets", "transformers", "transformer-lens", "gguf"}
assert not heavy, f"`pip install .` would install {sorted(heavy)}; move them to an extra in requirements/"
missing = {"pytest", "pytest-benchmark", "triton", "transformer-lens", "transformers", "gguf"} - test
assert not missing, f"`pip install .[test]` lacks {sorted(missing)}: the test suite imports them"
extras = set(metadata.get_all("Provides-Extra") or [])
assert {"lm", "gpu", "bench", "test", "all"} <= extras, f"the wheel provides extras {sorted(extras)}"
print(f"[pip-install] core needs {sorted(core)}; extras {sorted(extras)}")
PY
echo "[pip-install] done in $(( $(date +%s) - start ))s"
