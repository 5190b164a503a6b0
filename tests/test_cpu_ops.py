"""The C++ CPU ops (sae_fast.kernels.cpu) against the plain-torch references, fuzzed.

Selection must match exactly (same kept set, same CSR order, same values); the products must
match to float32 rounding.
"""

from __future__ import annotations

import pytest
import torch

from sae_fast.kernels import cpu
from sae_fast.kernels import select_reference as ref_select
from sae_fast.kernels import sparse_decode_reference as ref_products
from sae_fast.sparse_codes import SparseCodes

# Odd sizes on purpose; the last ones exceed the parallel grain so the OpenMP paths run too.
SHAPES = [(1, 1), (2, 3), (5, 7), (13, 31), (31, 17), (64, 129), (3, 1000), (130, 301), (257, 513)]
KINDS = ["continuous", "quantized", "sparse_rows", "all_zero", "with_negatives"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def make_pre(kind: str, n: int, m: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "continuous":
        pre = torch.relu(torch.randn(n, m, generator=g))
    elif kind == "quantized":  # a handful of levels: ties everywhere, across and within rows
        pre = torch.randint(0, 4, (n, m), generator=g).float() * 0.5
    elif kind == "sparse_rows":  # many rows with no positive entry at all
        pre = torch.relu(torch.randn(n, m, generator=g)) * (torch.rand(n, 1, generator=g) < 0.3)
        pre = torch.round(pre * 4) / 4
    elif kind == "all_zero":
        pre = torch.zeros(n, m)
    elif kind == "with_negatives":  # not post-ReLU: negatives and -0.0 must never be kept
        pre = torch.randn(n, m, generator=g).round()
        pre[pre == 0] = -0.0
    else:
        raise AssertionError(kind)
    return pre.to(dtype)


def assert_codes_equal(got: SparseCodes, want: SparseCodes) -> None:
    assert got.d_sae == want.d_sae
    assert torch.equal(got.row_offsets, want.row_offsets)
    assert torch.equal(got.latent_indices, want.latent_indices)
    assert got.values.dtype == want.values.dtype
    assert torch.equal(got.values, want.values)


def budgets(pre: torch.Tensor) -> list[int]:
    positive = int((pre > 0).sum())
    total = pre.numel()
    return sorted({0, 1, 2, positive // 3, max(positive - 1, 0), positive, positive + 5, total + 3})


def test_extension_is_built():
    assert cpu.is_available(), "sae_fast._C did not import; build it with `pip install -e .`"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_batch_topk_select_matches_reference(shape, kind):
    for seed in range(2):
        pre = make_pre(kind, *shape, seed=seed)
        for k_total in budgets(pre):
            assert_codes_equal(cpu.batch_topk_select(pre, k_total), ref_select.batch_topk_select(pre, k_total))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_topk_both_internal_paths_match_reference(kind):
    # The C++ op normally takes a sampled one-pass path and falls back to an exact radix select
    # when the sample misleads; force each path so both are checked whatever the data.
    from sae_fast import _C

    for shape in [(13, 31), (130, 301), (257, 513)]:
        pre = make_pre(kind, *shape, seed=8)
        for k_total in budgets(pre):
            want = ref_select.batch_topk_select(pre, k_total)
            for exact_path in (False, True):
                offsets, latents, values = _C.batch_topk_select(pre.numpy(), k_total, exact_path=exact_path)
                got = SparseCodes(torch.from_numpy(offsets), torch.from_numpy(latents), torch.from_numpy(values), shape[1])
                assert_codes_equal(got, want)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_topk_select_matches_reference(shape, kind):
    pre = make_pre(kind, *shape, seed=3)
    for k in sorted({0, 1, 2, 3, shape[1] // 2, shape[1], shape[1] + 4}):
        assert_codes_equal(cpu.topk_select(pre, k), ref_select.topk_select(pre, k))


@pytest.mark.parametrize("kind", KINDS)
def test_topk_select_both_cut_algorithms_match_reference(kind):
    # Rows are cut by a streaming buffer when k < m / 64 and by a radix select otherwise: cover both
    # sides of the switch, with tiny (subnormal) and huge values in the radix select's lowest and top bins.
    pre = make_pre(kind, 40, 700, seed=11)
    pre[0, :5] = torch.tensor([1e-40, 2e-40, 1e-40, 3e38, float("inf")])
    pre[1, :] = torch.where(pre[1] > 0, torch.full_like(pre[1], 1e-41), pre[1])  # a row of equal subnormals
    for k in (1, 5, 10, 11, 12, 40, 300, 699):
        assert_codes_equal(cpu.topk_select(pre, k), ref_select.topk_select(pre, k))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_subset_topk_select_matches_reference(shape, kind):
    n, m = shape
    pre = make_pre(kind, n, m, seed=8)
    g = torch.Generator().manual_seed(m)
    for size in sorted({0, 1, m // 3, m}):
        latents = torch.randperm(m, generator=g)[:size].sort().values
        for k in sorted({0, 1, 3, size, size + 2}):
            assert_codes_equal(cpu.subset_topk_select(pre, latents, k), ref_select.subset_topk_select(pre, latents, k))


def test_subset_topk_select_in_low_precision_and_bad_input():
    pre = make_pre("quantized", 33, 70, seed=9, dtype=torch.bfloat16)
    latents = torch.arange(3, 70, 4)
    assert_codes_equal(cpu.subset_topk_select(pre, latents, 5), ref_select.subset_topk_select(pre, latents, 5))
    with pytest.raises(ValueError, match="ascending"):
        cpu.subset_topk_select(pre, latents.flip(0), 5)
    with pytest.raises(TypeError, match="int64"):
        cpu.subset_topk_select(pre, latents.int(), 5)
    from sae_fast import _C

    with pytest.raises(ValueError, match="ascending"):  # the extension checks raw arrays too
        _C.topk_select(pre.float().numpy(), 2, latents.flip(0).numpy())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_threshold_select_matches_reference(shape, kind):
    pre = make_pre(kind, *shape, seed=4)
    g = torch.Generator().manual_seed(5)
    per_latent = torch.rand(shape[1], generator=g) * 1.5 - 0.25  # some negative thresholds
    per_latent[::3] = 0.5  # exactly a quantisation level: strict > must drop those ties
    for threshold in [0.0, 0.5, 0.3, -1.0, torch.tensor(0.75), per_latent]:
        assert_codes_equal(cpu.threshold_select(pre, threshold), ref_select.threshold_select(pre, threshold))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["continuous", "quantized", "sparse_rows"])
def test_selection_in_low_precision_matches_reference(dtype, kind):
    for shape in [(7, 11), (64, 129), (130, 301)]:
        pre = make_pre(kind, *shape, seed=6, dtype=dtype)
        for k_total in budgets(pre):
            assert_codes_equal(cpu.batch_topk_select(pre, k_total), ref_select.batch_topk_select(pre, k_total))
        for k in [1, 4, shape[1]]:
            assert_codes_equal(cpu.topk_select(pre, k), ref_select.topk_select(pre, k))
        # 0.3 is not representable in bf16/fp16: both sides must round it to pre's dtype first.
        per_latent = torch.linspace(0.0, 1.0, shape[1]).to(dtype)
        for threshold in [0.3, per_latent]:
            assert_codes_equal(cpu.threshold_select(pre, threshold), ref_select.threshold_select(pre, threshold))


def test_selection_of_non_contiguous_and_grad_inputs():
    base = make_pre("quantized", 40, 30, seed=7).requires_grad_()
    pre = base.t()  # a strided view that carries autograd history
    assert_codes_equal(cpu.batch_topk_select(pre, 100), ref_select.batch_topk_select(pre.detach(), 100))
    assert_codes_equal(cpu.topk_select(pre, 5), ref_select.topk_select(pre.detach(), 5))


def test_selection_handles_empty_batches():
    for shape in [(0, 5), (4, 0), (0, 0)]:
        pre = torch.zeros(shape)
        assert_codes_equal(cpu.batch_topk_select(pre, 3), ref_select.batch_topk_select(pre, 3))
        assert_codes_equal(cpu.topk_select(pre, 3), ref_select.topk_select(pre, 3))
        assert_codes_equal(cpu.threshold_select(pre, 0.0), ref_select.threshold_select(pre, 0.0))


def random_codes(n: int, d_sae: int, per_token: int, seed: int, dtype=torch.float32) -> SparseCodes:
    pre = make_pre("sparse_rows" if seed % 2 else "continuous", n, d_sae, seed=seed)
    codes = ref_select.batch_topk_select(pre, n * per_token)
    return codes.with_values(codes.values.to(dtype))


PRODUCT_SHAPES = [(1, 1, 1, 1), (3, 5, 2, 7), (17, 40, 6, 33), (64, 96, 8, 65), (200, 300, 12, 128)]


@pytest.mark.parametrize("n, d_sae, per_token, d", PRODUCT_SHAPES)
def test_sparse_products_match_reference(n, d_sae, per_token, d):
    for seed in range(2):
        codes = random_codes(n, d_sae, per_token, seed)
        g = torch.Generator().manual_seed(seed + 10)
        W = torch.randn(d_sae, d, generator=g)
        A = torch.randn(n, d, generator=g)
        b = torch.randn(d, generator=g)
        torch.testing.assert_close(cpu.sparse_decode(codes, W), ref_products.sparse_decode(codes, W))
        torch.testing.assert_close(cpu.sparse_decode(codes, W, b), ref_products.sparse_decode(codes, W, b))
        torch.testing.assert_close(cpu.sparse_row_dots(codes, A, W), ref_products.sparse_row_dots(codes, A, W))
        torch.testing.assert_close(
            cpu.sparse_transpose_matmul(codes, A), ref_products.sparse_transpose_matmul(codes, A)
        )


def test_sparse_products_with_no_entries():
    codes = random_codes(6, 9, 0, seed=0)
    assert codes.nnz == 0
    W, A = torch.randn(9, 4), torch.randn(6, 4)
    assert torch.equal(cpu.sparse_decode(codes, W), torch.zeros(6, 4))
    assert cpu.sparse_row_dots(codes, A, W).shape == (0,)
    assert torch.equal(cpu.sparse_transpose_matmul(codes, A), torch.zeros(9, 4))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_sparse_products_in_other_dtypes(dtype):
    codes = random_codes(33, 50, 5, seed=1, dtype=dtype)
    W = torch.randn(50, 24).to(dtype)
    A = torch.randn(33, 24).to(dtype)
    b = torch.randn(24).to(dtype)
    # The reference accumulates in `dtype`, the C++ ops in float32: compare both against float64.
    exact = codes.with_values(codes.values.double())
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype != torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    for got, want in [
        (cpu.sparse_decode(codes, W, b), ref_products.sparse_decode(exact, W.double(), b.double())),
        (cpu.sparse_row_dots(codes, A, W), ref_products.sparse_row_dots(exact, A.double(), W.double())),
        (cpu.sparse_transpose_matmul(codes, A), ref_products.sparse_transpose_matmul(exact, A.double())),
    ]:
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tol)


NESTED_WIDTHS = [[1], [2, 5], [6, 17, 40], [3, 5, 40, 41, 96], [1, 100, 300]]


@pytest.mark.parametrize("n, d_sae, per_token, d", PRODUCT_SHAPES)
@pytest.mark.parametrize("widths", NESTED_WIDTHS, ids=str)
def test_nested_sparse_decode_matches_reference(n, d_sae, per_token, d, widths):
    # Fit the widths to the dictionary: drop those past it and end at d_sae.
    widths = torch.tensor([w for w in widths if w < d_sae] + [d_sae])
    for seed in range(2):
        codes = random_codes(n, d_sae, per_token, seed)
        g = torch.Generator().manual_seed(seed + 20)
        W, b = torch.randn(d_sae, d, generator=g), torch.randn(d, generator=g)
        for bias in (None, b):
            got = cpu.nested_sparse_decode(codes, W, bias, widths)
            assert got.shape == (widths.numel(), n, d)
            torch.testing.assert_close(got, ref_products.nested_sparse_decode(codes, W, bias, widths))
        # The last level is the whole dictionary: exactly the plain decode.
        assert torch.equal(got[-1], cpu.sparse_decode(codes, W, b))


def test_nested_sparse_decode_empty_rows_and_other_dtypes():
    widths = torch.tensor([3, 9])
    empty = random_codes(6, 9, 0, seed=0)
    W, b = torch.randn(9, 4), torch.randn(4)
    assert torch.equal(cpu.nested_sparse_decode(empty, W, b, widths), b.expand(2, 6, 4))
    for dtype in (torch.bfloat16, torch.float64):
        codes = random_codes(33, 50, 5, seed=1, dtype=dtype)
        W, b, widths = torch.randn(50, 24).to(dtype), torch.randn(24).to(dtype), torch.tensor([10, 25, 50])
        exact = codes.with_values(codes.values.double())
        got = cpu.nested_sparse_decode(codes, W, b, widths)
        assert got.dtype == dtype
        tol = {"rtol": 2e-2, "atol": 2e-2} if dtype != torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
        torch.testing.assert_close(got.double(), ref_products.nested_sparse_decode(exact, W.double(), b.double(),
                                                                                   widths), **tol)


def test_nested_sparse_decode_rejects_bad_widths():
    codes, W = random_codes(4, 6, 2, seed=0), torch.rand(6, 3)
    for widths, message in [([], "non-empty"), ([3, 3, 6], "strictly increasing"), ([0, 6], "positive"),
                            ([2, 5], "d_sae = 6")]:
        with pytest.raises(ValueError, match=message):
            cpu.nested_sparse_decode(codes, W, None, torch.tensor(widths, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        cpu.nested_sparse_decode(codes, W, None, torch.tensor([3, 6], dtype=torch.int32))
    with pytest.raises(ValueError, match="end at d_sae=6"):
        ref_products.nested_sparse_decode(codes, W, None, torch.tensor([2, 5]))


def test_sparse_transpose_matmul_is_deterministic_and_handles_hot_latents():
    # Every token uses latent 0: one output row sums over all tokens.
    n, d_sae, d = 500, 20, 64
    pre = torch.rand(n, d_sae)
    pre[:, 0] = 10.0
    codes = ref_select.topk_select(pre, 3)
    A = torch.randn(n, d)
    first = cpu.sparse_transpose_matmul(codes, A)
    assert torch.equal(first, cpu.sparse_transpose_matmul(codes, A))
    torch.testing.assert_close(first, ref_products.sparse_transpose_matmul(codes, A), rtol=1e-4, atol=1e-4)


def test_invalid_inputs_raise_clear_errors():
    pre = torch.rand(4, 6)
    with pytest.raises(TypeError, match="pre must be a torch.Tensor"):
        cpu.batch_topk_select(pre.numpy(), 3)
    with pytest.raises(TypeError, match="floating"):
        cpu.batch_topk_select(torch.ones(4, 6, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="2-D"):
        cpu.topk_select(torch.rand(24), 3)
    with pytest.raises(ValueError, match=">= 0"):
        cpu.batch_topk_select(pre, -1)
    with pytest.raises(TypeError, match="int"):
        cpu.topk_select(pre, 2.5)
    with pytest.raises(TypeError, match="bool"):
        cpu.topk_select(pre, True)
    with pytest.raises(ValueError, match="threshold"):
        cpu.threshold_select(pre, torch.rand(5))

    codes = ref_select.batch_topk_select(pre, 8)
    with pytest.raises(ValueError, match="d_sae = 6 rows"):
        cpu.sparse_decode(codes, torch.rand(5, 3))
    with pytest.raises(ValueError, match="b_dec"):
        cpu.sparse_decode(codes, torch.rand(6, 3), torch.rand(4))
    with pytest.raises(ValueError, match="one row per token"):
        cpu.sparse_transpose_matmul(codes, torch.rand(5, 3))
    with pytest.raises(ValueError, match="same width"):
        cpu.sparse_row_dots(codes, torch.rand(4, 3), torch.rand(6, 2))
    with pytest.raises(TypeError, match="int64"):
        cpu.sparse_decode(SparseCodes(codes.row_offsets.int(), codes.latent_indices, codes.values, 6), torch.rand(6, 3))
    with pytest.raises(TypeError, match="SparseCodes"):
        cpu.sparse_decode((codes.row_offsets, codes.latent_indices, codes.values), torch.rand(6, 3))

    # Malformed patterns are caught in C++ before any out-of-bounds read.
    bad_latent = SparseCodes(codes.row_offsets, codes.latent_indices + 6, codes.values, 6)
    with pytest.raises(ValueError, match="latent_indices must lie in"):
        cpu.sparse_decode(bad_latent, torch.rand(6, 3))
    bad_offsets = SparseCodes(codes.row_offsets.flip(0), codes.latent_indices, codes.values, 6)
    with pytest.raises(ValueError, match="row_offsets"):
        cpu.sparse_row_dots(bad_offsets, torch.rand(4, 3), torch.rand(6, 3))
