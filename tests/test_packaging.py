"""`pip install .` in a fresh environment: pyproject.toml must declare what setup.py imports.

scripts/check_pip_install.sh (run by .ci/run) does the real isolated build; this is its cheap guard.
"""

from __future__ import annotations

import ast
import re
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
