#!/usr/bin/env bash
# Check sae_fast <-> real SAELens 6 compatibility (tests/saelens_compat) in the sae-lens side venv
# (scripts/saelens_venv.sh builds it on first use; reruns reuse it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/saelens_venv.sh
ensure_saelens_venv
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$SAELENS_PY" -m pytest tests/saelens_compat -q -p no:cacheprovider "$@"
