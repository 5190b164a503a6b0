"""Imports only run down the layers: kernels < modules < workflows, and in a fixed order among units.

Every ``import`` under ``sae_fast/`` is read with ``ast``, including imports inside functions and
``TYPE_CHECKING`` blocks: a lazy import that runs upward is still a dependency that runs upward.
A *unit* is a top-level module or subpackage of ``sae_fast``; imports within one unit are free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sae_fast"
FACADE = "sae_fast"  # sae_fast/__init__.py: the public re-exports, above everything it re-exports

# Lowest first. A unit may import only units on an earlier line; units on one line may not import
# each other, so the order admits no cycle.
ORDER: list[set[str]] = [
    {"_C", "sparse_codes", "openmp_policy"},  # the compiled extension, the CSR result type every kernel returns,
    # and OpenMP's wait policy (set before torch loads the runtime)
    {"kernels"},
    {"similarity"},  # workflow-level names of the kernel layer's max-cosine ops
    {"validation", "config_fields", "duration"},  # config_fields: the dataclass-field helpers every workflow config uses
    {"autograd", "block_decode"},
    {"sae"},
    {"io"},
    {"activations"},
    {"training"},
    {"evaluation"},
    {"meta", "stitching", "report"},
    {"synthetic"},
    {"commands"},  # the subcommands and the config <-> flag helpers the CLI builds its parser with
    {"cli"},
    {"reproduce", "demo"},
    {FACADE},
]
KERNEL_LAYER = {"_C", "sparse_codes", "openmp_policy", "kernels", "similarity"}
MODULE_LAYER = {"validation", "autograd", "block_decode", "sae"}
# __main__ only calls cli.main: it counts as the CLI.
SAME_UNIT = {"__main__": "cli"}

RANK = {unit: rank for rank, units in enumerate(ORDER) for unit in units}


def unit_of_file(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if relative == Path("__init__.py"):
        return FACADE
    name = relative.parts[0].split(".")[0]
    return SAME_UNIT.get(name, name)


def unit_of_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "sae_fast":
        return None
    if len(parts) == 1:
        return FACADE
    return SAME_UNIT.get(parts[1], parts[1])


def _is_submodule(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists() or any(PACKAGE.glob(f"{name}.*.so"))


def imported_units(source: str, module: str) -> set[str]:
    """Units of sae_fast that the code of ``module`` (dotted) imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(unit_of_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "sae_fast":
                # `from sae_fast import x`: the subpackage x if there is one, else the facade's re-export.
                found.update(SAME_UNIT.get(a.name, a.name) if _is_submodule(a.name) else FACADE for a in node.names)
            else:
                found.add(unit_of_module(base))
    found.discard(None)
    return found


def dotted_name(path: Path) -> str:
    """``sae_fast.x.y`` (a package keeps its ``__init__``, so relative imports resolve from it)."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def import_edges() -> dict[tuple[str, str], list[str]]:
    """``(importing unit, imported unit) -> files`` over every module of the package."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source_unit = unit_of_file(path)
        for target in imported_units(path.read_text(encoding="utf-8"), dotted_name(path)):
            if target != source_unit:
                edges.setdefault((source_unit, target), []).append(str(path.relative_to(PACKAGE.parent)))
    return edges


def upward_imports(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Every edge that does not go to an earlier line of ORDER, described for the failure message."""
    return [
        f"{source} imports {target} (in {', '.join(files)})"
        for (source, target), files in sorted(edges.items())
        if RANK[target] >= RANK[source]
    ]


def test_every_unit_has_a_place_in_the_order():
    units = {unit_of_file(path) for path in PACKAGE.rglob("*.py")}
    missing = sorted(units - set(RANK))
    assert not missing, f"add {missing} to ORDER in tests/test_layers.py at the layer it belongs to"


def test_kernels_import_no_modules_or_workflows():
    bad = [f"{s} imports {t} ({files})" for (s, t), files in import_edges().items()
           if s in KERNEL_LAYER and t not in KERNEL_LAYER]
    assert not bad, "the kernel layer must not import modules or workflows:\n" + "\n".join(bad)


def test_modules_import_no_workflows():
    lower = KERNEL_LAYER | MODULE_LAYER
    bad = [f"{s} imports {t} ({files})" for (s, t), files in import_edges().items() if s in MODULE_LAYER and t not in lower]
    assert not bad, "modules must not import workflows (register a hook instead):\n" + "\n".join(bad)


def test_imports_only_run_down_the_order():
    bad = upward_imports(import_edges())
    assert not bad, "imports that run upward or sideways (a possible cycle):\n" + "\n".join(bad)


@pytest.mark.parametrize("statement, module, expected", [
    ("def f():\n    from sae_fast.io import save_pretrained\n", "sae_fast.sae.base", {"io"}),
    ("from ..training import data\n", "sae_fast.activations.cache_reader", {"training"}),
    ("import sae_fast.__main__\n", "sae_fast.reproduce.family", {"cli"}),  # __main__ counts as the CLI
    ("from sae_fast import evaluation, BatchTopKSAE\n", "sae_fast.demo", {"evaluation", FACADE}),
])
def test_lazy_relative_and_facade_imports_are_found(statement, module, expected):
    assert imported_units(statement, module) == expected


def test_an_upward_import_is_reported():
    edges = {("sae", "io"): ["sae_fast/sae/base.py"], ("training", "sae"): ["sae_fast/training/trainer.py"]}
    assert upward_imports(edges) == ["sae imports io (in sae_fast/sae/base.py)"]
