#!/usr/bin/env bash
# Check sae_fast <-> real SAELens 6 compatibility (tests/saelens_compat) in a separate venv.
#
# SAELens 6 requires transformer-lens<4, which conflicts with the main .venv (transformer-lens 4),
# so it lives in its own venv (default /tmp/venv-saelens; override with SAELENS_VENV). The venv
# gets the same torch version as the main .venv, and every later install is pinned to it so pip
# never pulls a second torch. A cold build takes about 1.5 minutes here; reruns reuse the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SAELENS_VENV:-/tmp/venv-saelens}
PY=${PYTHON:-python3}

if [ -x .venv/bin/python ]; then
  TORCH_VERSION=$(.venv/bin/python -c "import torch; print(torch.__version__)")
else
  TORCH_VERSION=2.13.0
fi
CONSTRAINT=$(mktemp)
trap 'rm -f "$CONSTRAINT"' EXIT
echo "torch==$TORCH_VERSION" > "$CONSTRAINT"

if ! "$VENV/bin/python" -c "import sae_lens, pytest" 2>/dev/null; then
  echo "[saelens-compat] building $VENV (torch==$TORCH_VERSION, sae-lens, pytest)"
  start=$(date +%s)
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install -q -c "$CONSTRAINT" sae-lens pytest safetensors numpy
  echo "[saelens-compat] venv ready in $(( $(date +%s) - start ))s"
fi
"$VENV/bin/python" -c "import sae_lens, torch; print('[saelens-compat] sae_lens', sae_lens.__version__, 'torch', torch.__version__)"

PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" -m pytest tests/saelens_compat -q -p no:cacheprovider "$@"
