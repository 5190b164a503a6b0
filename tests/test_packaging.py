"""`pip install .` in a fresh environment: pyproject.toml must declare what setup.py imports.

scripts/check_pip_install.sh (run by .ci/run) does the real isolated build; this is its cheap guard.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_build_requirements_cover_what_setup_py_imports():
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert build_system["build-backend"] == "setuptools.build_meta"
    required = {re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower() for spec in build_system["requires"]}
    imported = set()
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    third_party = {name for name in imported - set(sys.stdlib_module_names) if name != "__future__"}
    assert third_party == {"pybind11", "setuptools"}  # if this changes, update pyproject.toml too
    assert third_party <= required


def test_pyproject_holds_no_second_copy_of_the_metadata():
    # setup.py is the one place for name, version and dependencies (from requirements.txt).
    assert "project" not in tomllib.loads((ROOT / "pyproject.toml").read_text())


# ------------------------------------------------------------------ pip extras (requirements/*.txt)
EXTRA_PACKAGES = {"triton", "pytest", "pytest-benchmark", "datasets", "transformers", "transformer-lens", "gguf"}
"""What `pip install sae-fast` must not bring (3 GB with Triton): each comes with an extra."""


def requirement_names(path: Path) -> set[str]:
    """Package names in a requirements file, following its ``-r`` includes as pip and setup.py do."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
        elif line:
            names.add(re.split(r"[<>=!~ \[;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_core_is_lean_and_the_test_extra_holds_what_the_suite_imports():
    requirements = ROOT / "requirements"
    assert not requirement_names(requirements / "core.txt") & EXTRA_PACKAGES
    assert requirement_names(requirements / "test.txt") >= EXTRA_PACKAGES
    # `make test` installs the core and the [test] extra from the same files.
    assert requirement_names(ROOT / "requirements.txt") >= requirement_names(requirements / "core.txt") | EXTRA_PACKAGES


# Every module imports with the extras missing (None in sys.modules is how Python spells "not
# installed": import fails and find_spec says absent), except the Triton kernel files, which the
# Triton backend imports only when Triton is there. Then one CPU training step, and the errors that
# name the extra to install.
WITHOUT_EXTRAS = r"""
import sys
for name in ("triton", "transformer_lens", "transformers", "tokenizers", "datasets", "gguf", "pytest"):
    sys.modules[name] = None
import importlib, pkgutil
import torch
import sae_fast
skipped = []
for module in pkgutil.walk_packages(sae_fast.__path__, "sae_fast."):
    stem = module.name.rsplit(".", 1)[-1]
    if stem == "__main__" or stem.endswith("_triton") or stem == "triton_utils":
        skipped.append(stem)
        continue
    importlib.import_module(module.name)
assert len(skipped) >= 5, skipped

from sae_fast import BatchTopKSAE
sae = BatchTopKSAE(16, 64, 4, seed=0)
optimizer = torch.optim.Adam(sae.parameters(), lr=1e-3)
out = sae.training_loss(torch.randn(128, 16))
out.loss.backward()
optimizer.step()
sae.after_optimizer_step_()
assert float(sae.threshold) > 0 and sae._ops().name != "triton"

from sae_fast.activations import load_model, tiny_random_model
for call in (load_model, tiny_random_model):
    try:
        call()
    except ImportError as error:
        assert "sae-fast[lm]" in str(error), error
    else:
        raise AssertionError(f"{call.__name__} ran without transformers")
from sae_fast.kernels.dispatch import kernel_ops
try:
    kernel_ops(torch.device("cpu"), "triton")
except ValueError as error:
    assert "sae-fast[gpu]" in str(error), error
else:
    raise AssertionError("backend='triton' was accepted without triton")
print("ok")
"""


def test_the_core_runs_without_any_extra():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TRITON_INTERPRET": "1"}  # would pick the Triton interpreter if Triton were importable
    result = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS], env=env, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
