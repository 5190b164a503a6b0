# Sourced by the scripts that need real SAELens 6: `ensure_saelens_venv [extra packages]` builds the
# side venv (default /tmp/venv-saelens; override with SAELENS_VENV) on first use and sets SAELENS_PY.
#
# SAELens 6 requires transformer-lens<4, which conflicts with the main .venv (transformer-lens 4).
# The venv gets the same torch version as the main .venv, and every later install is pinned to it
# so pip never pulls a second torch. A cold build takes about 1.5 minutes here.
ensure_saelens_venv() {
  local venv=${SAELENS_VENV:-/tmp/venv-saelens} py=${PYTHON:-python3} torch_version constraint
  if [ -x .venv/bin/python ]; then
    torch_version=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
  else
    torch_version=2.13.0
  fi
  constraint=$(mktemp)
  echo "torch==$torch_version" > "$constraint"
  local modules="import sae_lens, pytest, safetensors, numpy"
  for extra in "$@"; do modules="$modules, ${extra//-/_}"; done
  if ! "$venv/bin/python" -c "$modules" 2>/dev/null; then
    echo "[saelens] preparing $venv (torch==$torch_version, sae-lens, pytest $*)"
    local start
    start=$(date +%s)
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "torch==$torch_version"
    "$venv/bin/python" -m pip install -q -c "$constraint" sae-lens pytest safetensors numpy "$@"
    echo "[saelens] venv ready in $(( $(date +%s) - start ))s"
  fi
  rm -f "$constraint"
  SAELENS_PY="$venv/bin/python"
  "$SAELENS_PY" -c "import sae_lens, torch; print('[saelens] sae_lens', sae_lens.__version__, 'torch', torch.__version__)"
}
