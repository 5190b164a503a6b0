"""Triton sparse products must equal the plain-torch references (float32 accumulation).

Runs on CPU through the Triton interpreter (TRITON_INTERPRET=1, set below before triton is
imported); on a CUDA machine without the variable it runs the compiled kernels on the GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from sae_fast.kernels import select_reference  # noqa: E402
from sae_fast.kernels import sparse_decode_reference as ref  # noqa: E402
from sae_fast.kernels import sparse_products_triton as tri  # noqa: E402
from sae_fast.kernels.triton_interpreter import interpreting  # noqa: E402
from sae_fast.sparse_codes import SparseCodes  # noqa: E402

DEVICE = "cpu" if interpreting() else "cuda"


@pytest.fixture(autouse=True)
def _kernels_match_mode():
    if DEVICE == "cpu" and type(tri._sparse_decode_kernel).__name__ != "InterpretedFunction":
        pytest.fail("sparse_products_triton was imported before TRITON_INTERPRET=1 was set")


def tolerance(dtype: torch.dtype) -> dict:
    # bf16: the reference rounds every product to bf16, the kernels round once at the end.
    return dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=6e-2, rtol=3e-2)


def make_codes(n: int, m: int, k_total: int, dtype: torch.dtype, seed: int) -> SparseCodes:
    """BatchTopK codes: a variable number of latents per token, some tokens with none."""
    g = torch.Generator().manual_seed(seed)
    pre = torch.relu(torch.randn(n, m, generator=g))
    pre[1::4] = 0.0
    codes = select_reference.batch_topk_select(pre, k_total)
    return SparseCodes(
        codes.row_offsets.to(DEVICE),
        codes.latent_indices.to(DEVICE),
        codes.values.to(dtype).to(DEVICE),
        m,
    )


def randn(*shape: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype).to(DEVICE)


def as_f32(codes: SparseCodes) -> SparseCodes:
    return SparseCodes(
        codes.row_offsets.cpu(), codes.latent_indices.cpu(), codes.values.float().cpu(), codes.d_sae
    )


CASES = [(9, 40, 37, 30), (16, 23, 20, 100), (5, 12, 7, 0)]  # n, d_sae, d, k_total


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,m,d,k_total", CASES)
def test_sparse_decode(n, m, d, k_total, dtype):
    codes = make_codes(n, m, k_total, dtype, seed=n)
    W = randn(m, d, dtype=dtype, seed=1)
    b = randn(d, dtype=dtype, seed=2)
    for bias in (None, b):
        got = tri.sparse_decode(codes, W, bias)
        assert got.dtype == dtype and got.shape == (n, d)
        want = ref.sparse_decode(as_f32(codes), W.float().cpu(), None if bias is None else b.float().cpu())
        torch.testing.assert_close(got.float().cpu(), want, **tolerance(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,m,d,k_total", CASES)
def test_nested_sparse_decode(n, m, d, k_total, dtype):
    codes = make_codes(n, m, k_total, dtype, seed=n + 3)
    W = randn(m, d, dtype=dtype, seed=7)
    b = randn(d, dtype=dtype, seed=8)
    # One level, a level holding no latent of some token, and a first level of one latent.
    for widths in ([m], [m // 3, m // 2, m], [1, m - 1, m]):
        widths = torch.tensor(widths, dtype=torch.int64, device=DEVICE)
        for bias in (None, b):
            got = tri.nested_sparse_decode(codes, W, bias, widths)
            assert got.dtype == dtype and got.shape == (widths.numel(), n, d)
            want = ref.nested_sparse_decode(
                as_f32(codes), W.float().cpu(), None if bias is None else b.float().cpu(), widths.cpu()
            )
            torch.testing.assert_close(got.float().cpu(), want, **tolerance(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,m,d,k_total", CASES)
def test_sparse_row_dots(n, m, d, k_total, dtype):
    codes = make_codes(n, m, k_total, dtype, seed=n + 1)
    A = randn(n, d, dtype=dtype, seed=3)
    W_enc = randn(d, m, dtype=dtype, seed=4)
    # The encoder's backward passes W_enc.T: a strided view the kernel must read in place.
    for W in (W_enc.T.contiguous(), W_enc.T):
        got = tri.sparse_row_dots(codes, A, W)
        assert got.dtype == dtype and got.shape == (codes.nnz,)
        want = ref.sparse_row_dots(as_f32(codes), A.float().cpu(), W.float().cpu())
        torch.testing.assert_close(got.float().cpu(), want, **tolerance(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,m,d,k_total", CASES)
def test_sparse_transpose_matmul(n, m, d, k_total, dtype):
    codes = make_codes(n, m, k_total, dtype, seed=n + 2)
    A = randn(n, d, dtype=dtype, seed=5)
    want = ref.sparse_transpose_matmul(as_f32(codes), A.float().cpu())
    for A_view in (A, A.T.contiguous().T):
        got = tri.sparse_transpose_matmul(codes, A_view)
        assert got.dtype == dtype and got.shape == (m, d)
        torch.testing.assert_close(got.float().cpu(), want, **tolerance(dtype))


def test_transpose_matmul_is_deterministic():
    codes = make_codes(16, 23, 100, torch.float32, seed=9)
    A = randn(16, 20, dtype=torch.float32, seed=6)
    assert torch.equal(tri.sparse_transpose_matmul(codes, A), tri.sparse_transpose_matmul(codes, A))


def test_rejects_bad_input():
    codes = make_codes(4, 6, 8, torch.float32, seed=0)
    with pytest.raises(TypeError, match="SparseCodes"):
        tri.sparse_decode(torch.zeros(4, 6, device=DEVICE), torch.zeros(6, 3, device=DEVICE))
    with pytest.raises(ValueError, match="6 rows"):
        tri.sparse_decode(codes, torch.zeros(5, 3, device=DEVICE))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        tri.sparse_decode(codes, torch.zeros(6, 3, device=DEVICE), torch.zeros(4, device=DEVICE))
    with pytest.raises(ValueError, match="same width"):
        tri.sparse_row_dots(codes, torch.zeros(4, 3, device=DEVICE), torch.zeros(6, 2, device=DEVICE))
    with pytest.raises(ValueError, match="4 rows"):
        tri.sparse_transpose_matmul(codes, torch.zeros(3, 2, device=DEVICE))
    with pytest.raises(TypeError, match="float32"):
        tri.sparse_transpose_matmul(codes, torch.zeros(4, 2, dtype=torch.float64, device=DEVICE))
    with pytest.raises(ValueError, match="int64"):
        tri.nested_sparse_decode(codes, torch.zeros(6, 3, device=DEVICE), None, torch.tensor([6], device=DEVICE).int())
