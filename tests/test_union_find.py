"""Union-find: the C++ op equals the plain-Python reference on fuzzed graphs; the reference equals
an independent oracle (min-label propagation); the dispatcher validates its input."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from sae_fast.kernels import union_find_cpu, union_find_reference
from sae_fast.kernels.union_find import connected_components

ROOT = Path(__file__).resolve().parents[1]
needs_cpp = pytest.mark.skipif(not union_find_cpu.is_available(), reason="sae_fast._C lacks connected_components")


def _propagated_min_labels(n_nodes: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each node's smallest reachable node, by pushing the minimum across edges until nothing changes."""
    labels = torch.arange(n_nodes, dtype=torch.int64)
    while True:
        smaller = torch.minimum(labels[u], labels[v])
        updated = labels.scatter_reduce(0, u, smaller, "amin").scatter_reduce(0, v, smaller, "amin")
        if torch.equal(updated, labels):
            return labels
        labels = updated


def _fuzzed_graphs():
    """Empty and self-loop graphs, then random ones from sparse (many singletons) to dense."""
    yield 0, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    yield 1, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    yield 5, torch.tensor([0, 4, 4]), torch.tensor([0, 4, 4])
    g = torch.Generator().manual_seed(0)
    for n, e in [(2, 1), (10, 4), (50, 40), (200, 150), (300, 1000), (1000, 600)]:
        yield n, torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)


@pytest.mark.parametrize("graph", list(_fuzzed_graphs()), ids=lambda graph: f"n{graph[0]}-e{graph[1].numel()}")
def test_reference_labels_every_node_by_its_smallest_reachable_node(graph):
    n, u, v = graph
    assert union_find_reference.connected_components(n, u, v).tolist() == _propagated_min_labels(n, u, v).tolist()


@needs_cpp
@pytest.mark.parametrize("graph", list(_fuzzed_graphs()), ids=lambda graph: f"n{graph[0]}-e{graph[1].numel()}")
def test_cpp_matches_reference(graph):
    n, u, v = graph
    got = union_find_cpu.connected_components(n, u, v)
    assert got.dtype == torch.int64
    assert torch.equal(got, union_find_reference.connected_components(n, u, v))


@pytest.mark.parametrize("backend", ["auto", "torch", "python"])
def test_dispatched_op_matches_reference_and_ignores_edge_order(backend):
    for n, u, v in _fuzzed_graphs():
        want = union_find_reference.connected_components(n, u, v)
        assert torch.equal(connected_components(n, u, v, backend=backend), want)
        reversed_order = torch.arange(u.numel() - 1, -1, -1)
        assert torch.equal(connected_components(n, v[reversed_order], u[reversed_order], backend=backend), want)


def test_standalone_cpp_build_matches_reference(tmp_path):
    """Build csrc/union_find.cpp on its own (the package extension may predate it) and compare."""
    import pybind11

    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = tmp_path / f"_uf_standalone{suffix}"
    cmd = ["c++", "-O1", "-std=c++17", "-shared", "-fPIC", "-DSAE_FAST_UNION_FIND_STANDALONE=_uf_standalone",
           f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}",
           str(ROOT / "csrc" / "union_find.cpp"), "-o", str(out)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=240)
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no working C++ compiler here: {error}")
    sys.path.insert(0, str(tmp_path))
    try:
        import _uf_standalone
    finally:
        sys.path.pop(0)
    for n, u, v in _fuzzed_graphs():
        got = _uf_standalone.connected_components(n, u.numpy(), v.numpy())
        assert got.tolist() == union_find_reference.connected_components(n, u, v).tolist()
    with pytest.raises(ValueError, match="outside"):
        _uf_standalone.connected_components(3, np.array([0]), np.array([3]))


def test_invalid_edges_raise_with_the_reason():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        connected_components(3, torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError, match="same length"):
        connected_components(3, torch.tensor([0, 1]), torch.tensor([1]))
    with pytest.raises(TypeError, match="integer"):
        connected_components(3, torch.tensor([0.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        connected_components(-1, torch.tensor([0]), torch.tensor([0]))


def test_unknown_or_missing_backends_raise():
    u = v = torch.tensor([0])
    with pytest.raises(ValueError, match="no Triton"):
        connected_components(1, u, v, backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        connected_components(1, u, v, backend="gpu")
    if not union_find_cpu.is_available():
        with pytest.raises(ValueError, match="sae_fast._C"):
            connected_components(1, u, v, backend="cpp")


def test_workflow_packages_export_the_dispatched_op():
    import sae_fast.stitching

    assert sae_fast.stitching.connected_components is connected_components
