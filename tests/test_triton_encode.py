"""Fused Triton encode + select: pre matches the torch encoder, codes match select_reference on it.

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

from sae_fast.kernels import encode_select_triton as tri  # noqa: E402
from sae_fast.kernels import select_reference as ref  # noqa: E402
from sae_fast.kernels.triton_interpreter import interpreting  # noqa: E402

DEVICE = "cpu" if interpreting() else "cuda"


@pytest.fixture(autouse=True)
def _kernels_match_mode():
    if DEVICE == "cpu" and type(tri._encode_kernel).__name__ != "InterpretedFunction":
        pytest.fail("encode_select_triton was imported before TRITON_INTERPRET=1 was set")


def make_sae_inputs(n: int, m: int, d: int, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    W_enc = torch.randn(d, m, generator=g) / d**0.5
    b_enc = torch.randn(m, generator=g) * 0.3
    b_dec = torch.randn(d, generator=g) * 0.1
    return [t.to(dtype).to(DEVICE) for t in (x, W_enc, b_enc, b_dec)]


def torch_encoder(x, W_enc, b_enc, b_dec):
    # Centre in the input dtype (as the SAE module does), then a float32 matmul.
    centred = (x - b_dec).float().cpu()
    return torch.relu(centred @ W_enc.float().cpu() + b_enc.float().cpu())


def assert_same_codes(got, want):
    assert torch.equal(got.row_offsets.cpu(), want.row_offsets)
    assert torch.equal(got.latent_indices.cpu(), want.latent_indices)
    assert torch.equal(got.values.cpu(), want.values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n,m,d", [(7, 33, 5), (37, 70, 40)])
def test_encode_select_matches_reference(n, m, d, dtype):
    x, W_enc, b_enc, b_dec = make_sae_inputs(n, m, d, dtype, seed=n + m)
    # bf16: the kernel rounds pre once from float32; the interpreter's rounding may differ by 1 ulp.
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    expected_pre = torch_encoder(x, W_enc, b_enc, b_dec)
    selections = [
        (dict(k_total=3 * n), lambda p: ref.batch_topk_select(p, 3 * n)),
        (dict(k_total=n * m), lambda p: ref.batch_topk_select(p, n * m)),  # more than #positive
        (dict(k_total=0), lambda p: ref.batch_topk_select(p, 0)),
        (dict(k=4), lambda p: ref.topk_select(p, 4)),
        (dict(threshold=0.3), lambda p: ref.threshold_select(p, 0.3)),
    ]
    for kwargs, reference_select in selections:
        pre, codes, aux_codes = tri.encode_select(x, W_enc, b_enc, b_dec, **kwargs)
        assert aux_codes is None
        assert pre.dtype == dtype and pre.shape == (n, m)
        torch.testing.assert_close(pre.float().cpu(), expected_pre, **tol)
        # Selection is exact on the pre the kernel produced (the fused histogram included).
        assert_same_codes(codes, reference_select(pre.cpu()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_aux_selection_matches_reference(dtype):
    """Few aux latents take the compact epilogue copy, many the in-place gathered select; both
    must equal subset_topk_select on the returned pre, whatever the main selection rule."""
    n, m, d = 21, 80, 12
    x, W_enc, b_enc, b_dec = make_sae_inputs(n, m, d, dtype, seed=5)
    few = torch.tensor([0, 3, 4, 17, 40, 79])  # 6 <= 80 / 8: compact buffer
    many = torch.arange(1, m, 2)  # 40 > 80 / 8: gathered in place
    assert few.numel() <= m * tri.AUX_COMPACT_MAX_FRACTION < many.numel()
    for latents in (few, many):
        for rule, aux_k in ((dict(k_total=2 * n), 4), (dict(k=3), latents.numel() + 1), (dict(threshold=0.2), 0)):
            pre, codes, aux_codes = tri.encode_select(
                x, W_enc, b_enc, b_dec, **rule, aux_latents=latents.to(DEVICE), aux_k=aux_k
            )
            assert_same_codes(aux_codes, ref.subset_topk_select(pre.cpu(), latents, aux_k))
            assert aux_codes.d_sae == m and aux_codes.values.dtype == dtype
            main = ref.batch_topk_select if "k_total" in rule else ref.topk_select if "k" in rule else ref.threshold_select
            assert_same_codes(codes, main(pre.cpu(), next(iter(rule.values()))))


def test_fused_histogram_equals_unfused_selection():
    x, W_enc, b_enc, b_dec = make_sae_inputs(24, 50, 16, torch.float32, seed=0)
    hist = torch.zeros(tri.radix.NUM_BINS, dtype=torch.int64, device=DEVICE)
    pre = tri.encode(x, W_enc, b_enc, b_dec, top_digit_histogram=hist)
    keys = torch.where(pre > 0, pre.view(torch.int32), 0).cpu()
    assert torch.equal(hist.cpu(), torch.bincount((keys >> 24).flatten(), minlength=tri.radix.NUM_BINS))


def test_rejects_bad_input():
    x, W_enc, b_enc, b_dec = make_sae_inputs(4, 8, 3, torch.float32, seed=1)
    with pytest.raises(ValueError, match="exactly one"):
        tri.encode_select(x, W_enc, b_enc, b_dec)
    with pytest.raises(ValueError, match="exactly one"):
        tri.encode_select(x, W_enc, b_enc, b_dec, k=2, threshold=0.1)
    with pytest.raises(ValueError, match="shapes do not fit"):
        tri.encode_select(x, W_enc.T, b_enc, b_dec, k=2)
    with pytest.raises(TypeError, match="one dtype"):
        tri.encode_select(x, W_enc, b_enc.to(torch.bfloat16), b_dec, k=2)
    with pytest.raises(ValueError, match=">= 0"):
        tri.encode_select(x, W_enc, b_enc, b_dec, k_total=-3)
    with pytest.raises(ValueError, match="lie in"):
        tri.encode_select(x, W_enc, b_enc, b_dec, k=2, aux_latents=torch.tensor([8], device=DEVICE), aux_k=1)
    with pytest.raises(ValueError, match=">= 0"):
        tri.encode_select(x, W_enc, b_enc, b_dec, k=2, aux_latents=torch.tensor([1], device=DEVICE), aux_k=-1)
