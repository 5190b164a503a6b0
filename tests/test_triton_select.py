"""Triton selection kernels must pick exactly what select_reference picks, in the same CSR order.

Runs on CPU through the Triton interpreter (TRITON_INTERPRET=1, set below before triton is
imported); on a CUDA machine without the variable it runs the compiled kernels on the GPU.
Shapes stay small because the interpreter executes every program in Python.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from sae_fast.kernels import select_reference as ref  # noqa: E402
from sae_fast.kernels import select_triton as tri  # noqa: E402
from sae_fast.kernels.triton_backend import TRITON_OPS, is_available  # noqa: E402
from sae_fast.kernels.triton_interpreter import interpreting  # noqa: E402
from sae_fast.sparse_codes import SparseCodes  # noqa: E402

DEVICE = "cpu" if interpreting() else "cuda"


@pytest.fixture(autouse=True)
def _kernels_match_mode():
    # Triton fixes interpreter-vs-compiled when a kernel module is first imported.
    if DEVICE == "cpu" and type(tri._row_topk_cut_kernel).__name__ != "InterpretedFunction":
        pytest.fail("select_triton was imported before TRITON_INTERPRET=1 was set; set it for the run")


def assert_same_codes(got: SparseCodes, want: SparseCodes) -> None:
    assert got.d_sae == want.d_sae
    assert torch.equal(got.row_offsets.cpu(), want.row_offsets.cpu())
    assert torch.equal(got.latent_indices.cpu(), want.latent_indices.cpu())
    assert got.values.dtype == want.values.dtype
    assert torch.equal(got.values.cpu(), want.values.cpu())


def make_pre(n: int, m: int, kind: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Pre-activations with the awkward cases: ties, empty rows, negatives, all zeros."""
    g = torch.Generator().manual_seed(seed)
    if kind == "zeros":
        pre = torch.zeros(n, m)
    elif kind == "ties":  # few distinct values: many exact ties, also across rows
        pre = torch.randint(0, 4, (n, m), generator=g).float() * 0.25
    elif kind == "raw":  # not ReLU'd: negatives must never be kept
        pre = torch.randn(n, m, generator=g)
    else:  # sparse positives with some rows entirely inactive
        pre = torch.relu(torch.randn(n, m, generator=g) - 0.8)
        pre[::3] = 0.0
    return pre.to(dtype).to(DEVICE)


DTYPES = [torch.float32, torch.bfloat16]
KINDS = ["sparse", "ties", "raw", "zeros"]


# (40, 130) spans several histogram blocks per program and several scan blocks per row.
BATCH_CASES = [((5, 37), kind) for kind in KINDS] + [((40, 130), "ties"), ((40, 130), "raw")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kind", BATCH_CASES)
def test_batch_topk_matches_reference(shape, kind, dtype):
    n, m = shape
    pre = make_pre(n, m, kind, dtype, seed=n * m)
    n_positive = int((pre > 0).sum())
    budgets = {0, 1, n * 3, n_positive, n_positive + 7} if kind != "zeros" else {0, 5}
    for k_total in sorted(budgets):
        got = tri.batch_topk_select(pre, k_total)
        assert_same_codes(got, ref.batch_topk_select(pre.cpu(), k_total))
        assert got.nnz == min(k_total, n_positive)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sparse", "ties", "raw"])
def test_topk_matches_reference(kind, dtype):
    pre = make_pre(6, 150, kind, dtype, seed=7)
    for k in (0, 1, 4, 200):
        assert_same_codes(tri.topk_select(pre, k), ref.topk_select(pre.cpu(), k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sparse", "ties", "raw"])
def test_threshold_matches_reference(kind, dtype):
    n, m = 21, 140
    pre = make_pre(n, m, kind, dtype, seed=3)
    per_latent = torch.rand(m, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    for threshold in (0.0, 0.25, per_latent, per_latent.to(dtype)):
        got = tri.threshold_select(pre, threshold)
        want_thr = threshold.cpu() if isinstance(threshold, torch.Tensor) else threshold
        assert_same_codes(got, ref.threshold_select(pre.cpu(), want_thr))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sparse", "ties", "raw", "zeros"])
def test_subset_topk_matches_reference(kind, dtype):
    n, m = 9, 300  # subsets wider than one column block of the per-row select
    pre = make_pre(n, m, kind, dtype, seed=11)
    g = torch.Generator().manual_seed(2)
    assert tri.subset_topk_select(pre, torch.arange(m, device=DEVICE), 0).nnz == 0
    for size in (0, 37, m):
        latents = torch.randperm(m, generator=g)[:size].sort().values
        for k in (1, size + 3):
            got = tri.subset_topk_select(pre, latents.to(DEVICE), k)
            assert_same_codes(got, ref.subset_topk_select(pre.cpu(), latents, k))


def test_empty_batch():
    pre = torch.zeros(0, 10, device=DEVICE)
    assert tri.batch_topk_select(pre, 5).nnz == 0
    assert tri.topk_select(pre, 5).row_offsets.tolist() == [0]
    assert tri.threshold_select(pre, 0.1).nnz == 0


def test_rejects_bad_input():
    pre = torch.rand(4, 8, device=DEVICE)
    with pytest.raises(ValueError, match="2-D"):
        tri.batch_topk_select(pre[0], 3)
    with pytest.raises(TypeError, match="float32"):
        tri.topk_select(pre.to(torch.float64), 3)
    with pytest.raises(ValueError, match=">= 0"):
        tri.batch_topk_select(pre, -1)
    with pytest.raises(TypeError, match="int"):
        tri.topk_select(pre, 2.5)
    with pytest.raises(ValueError, match="one per latent"):
        tri.threshold_select(pre, torch.rand(7))
    with pytest.raises(ValueError, match="ascending"):
        tri.subset_topk_select(pre, torch.tensor([2, 1], device=DEVICE), 1)


def test_backend_exposes_every_op():
    assert is_available()
    assert TRITON_OPS.name == "triton"
    for op in (
        "batch_topk_select", "topk_select", "subset_topk_select", "threshold_select", "sparse_decode",
        "sparse_row_dots", "sparse_transpose_matmul", "encode_select",
    ):  # fmt: skip
        assert callable(getattr(TRITON_OPS, op))
    # The backend's entries import the kernel modules on first call; they must reach these kernels.
    pre = make_pre(5, 40, "ties", torch.float32, seed=3)
    assert_same_codes(TRITON_OPS.batch_topk_select(pre, 7), tri.batch_topk_select(pre, 7))
    with pytest.raises(AttributeError):
        TRITON_OPS.no_such_op  # noqa: B018
