"""``encode_select`` on every backend keeps exactly what its spec keeps: encode, then select.

Inputs are small integers, so every product and sum is exact in float32 whatever order a BLAS or
kernel sums in: the pre-activations are bitwise the spec's, and the many equal values exercise the
tie rule (lower flat index wins), including across the CPU version's row blocks.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from sae_fast.kernels import encode_select_cpu, encode_select_reference, select_reference  # noqa: E402
from sae_fast.kernels.dispatch import REFERENCE_OPS, kernel_ops  # noqa: E402
from sae_fast.kernels.ops import KernelOps  # noqa: E402
from sae_fast.kernels.selection_rule import SelectionRule  # noqa: E402

BACKENDS = ["torch", "cpp", "triton"]


def integer_inputs(n: int, m: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (n, d), generator=g).float()
    W_enc = torch.randint(-2, 3, (d, m), generator=g).float()
    b_enc = torch.randint(-2, 2, (m,), generator=g).float()
    b_dec = torch.randint(-1, 2, (d,), generator=g).float()
    return x, W_enc, b_enc, b_dec


def assert_same_codes(got, want):
    assert got.d_sae == want.d_sae
    assert torch.equal(got.row_offsets.cpu(), want.row_offsets)
    assert torch.equal(got.latent_indices.cpu(), want.latent_indices)
    assert torch.equal(got.values.cpu(), want.values)


def ops_for(backend: str) -> KernelOps:
    device = torch.device("cuda" if backend == "triton" and torch.cuda.is_available() else "cpu")
    return kernel_ops(device, backend)


def rules(n: int, m: int, d_sae_threshold: torch.Tensor):
    return [
        SelectionRule("batch_topk", 3 * n),
        SelectionRule("batch_topk", n * m),  # more than the positive entries: keeps them all
        SelectionRule("batch_topk", 1),
        SelectionRule("topk", 4),
        SelectionRule("threshold", 2.0),
        SelectionRule("threshold", d_sae_threshold),
    ]


SHAPES = [(9, 17, 6), (70, 40, 8), (130, 33, 5)]
# The interpreter runs every Triton program in Python: the smallest shape only (the row blocks
# that the larger shapes exercise are the CPU version's).
CASES = [(backend, *shape) for backend in BACKENDS for shape in SHAPES if backend != "triton" or shape == SHAPES[0]]


@pytest.mark.parametrize("backend,n,m,d", CASES)
def test_encode_select_matches_its_spec(backend, n, m, d, monkeypatch):
    # Blocks of 64 rows (the CPU version's minimum) so 70 and 130 tokens span two and three blocks.
    monkeypatch.setattr(encode_select_cpu, "BLOCK_BYTES", 1)
    ops = ops_for(backend)
    x, W_enc, b_enc, b_dec = integer_inputs(n, m, d, seed=n * m)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    moved = [t.to(device) for t in (x, W_enc, b_enc, b_dec)]
    dead = torch.arange(0, m, 3)
    pre = torch.relu((x - b_dec) @ W_enc + b_enc)
    for rule in rules(n, m, torch.arange(m).float() % 4):
        device_rule = SelectionRule(rule.kind, rule.value.to(device) if torch.is_tensor(rule.value) else rule.value)
        for aux_latents, aux_k in ((None, 0), (dead, 2), (dead, m)):
            got = ops.encode_select(*moved, device_rule, aux_latents=None if aux_latents is None
                                    else aux_latents.to(device), aux_k=aux_k)  # fmt: skip
            assert_same_codes(got.codes, rule.apply(select_reference, pre))
            if aux_latents is None:
                assert got.aux_codes is None
            else:
                assert_same_codes(got.aux_codes, select_reference.subset_topk_select(pre, aux_latents, aux_k))


def test_the_spec_is_encode_then_select():
    x, W_enc, b_enc, b_dec = integer_inputs(12, 20, 5, seed=0)
    pre = encode_select_reference.encode(x, W_enc, b_enc, b_dec)
    assert torch.equal(pre, torch.relu((x - b_dec) @ W_enc + b_enc))
    got = REFERENCE_OPS.encode_select(x, W_enc, b_enc, b_dec, SelectionRule("topk", 3), torch.tensor([1, 4]), 1)
    assert_same_codes(got.codes, select_reference.topk_select(pre, 3))
    assert_same_codes(got.aux_codes, select_reference.subset_topk_select(pre, torch.tensor([1, 4]), 1))


def test_cpu_blocks_hold_no_whole_pre_activation_matrix(monkeypatch):
    # The batch top-k survivors of each block are merged exactly, whatever the block size.
    x, W_enc, b_enc, b_dec = integer_inputs(200, 50, 6, seed=3)
    pre = torch.relu((x - b_dec) @ W_enc + b_enc)
    want = select_reference.batch_topk_select(pre, 300)
    for block_bytes in (1, 64 * 50 * 4 * 2, 10**9):
        monkeypatch.setattr(encode_select_cpu, "BLOCK_BYTES", block_bytes)
        got = encode_select_cpu.encode_select(x, W_enc, b_enc, b_dec, SelectionRule("batch_topk", 300))
        assert_same_codes(got.codes, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_has_every_op(backend):
    ops = ops_for(backend)
    assert ops.name == backend
    pre = torch.rand(6, 9, device="cuda" if backend == "triton" and torch.cuda.is_available() else "cpu")
    assert_same_codes(ops.select(pre, SelectionRule("batch_topk", 10)), select_reference.batch_topk_select(pre.cpu(), 10))


def test_selection_rule_names_its_kind():
    with pytest.raises(ValueError, match="batch_topk"):
        SelectionRule("top_k", 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transposed_sparse_transpose_matmul_is_the_transpose(backend):
    ops = ops_for(backend)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    pre = torch.rand(40, 30).masked_fill(torch.rand(40, 30) < 0.7, 0)
    codes = select_reference.batch_topk_select(pre, 100)
    A = torch.randn(40, 7)
    want = REFERENCE_OPS.sparse_transpose_matmul(codes, A)
    moved = type(codes)(*(t.to(device) for t in (codes.row_offsets, codes.latent_indices, codes.values)), codes.d_sae)
    got = ops.sparse_transpose_matmul(moved, A.to(device), transposed=True)
    assert got.shape == (7, 30) and got.is_contiguous()
    torch.testing.assert_close(got.cpu(), want.t())
