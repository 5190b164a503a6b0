"""Blocked ("torch") and Triton (interpreter) max-cosine paths against the brute-force specification."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from sae_fast.kernels import max_cosine_reference as ref
from sae_fast.kernels.max_cosine import cosine_pairs_above, max_cosine_similarity, top_n_cosine_neighbours


def _data(m1: int, m0: int, d: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m1, d, generator=g, dtype=dtype), torch.randn(m0, d, generator=g, dtype=dtype)


def _one_hot_data():
    """Exactly representable cosines (0, 1, 1/sqrt 2 ...) with ties, zero rows and duplicates."""
    eye = torch.eye(8)
    keys = torch.stack([eye[1], eye[0], torch.zeros(8), eye[0], eye[2] * 3.0, eye[1], eye[5] + eye[6], eye[1]])
    queries = torch.stack([eye[0], eye[1], torch.zeros(8), eye[3], eye[2], -eye[0], eye[5] * 2, eye[1] + eye[2]])
    return queries, keys


@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 53, 19), (130, 70, 64), (64, 256, 33)])
@pytest.mark.parametrize("block", [(7, 11), (16, 16), (1000, 1000)])
def test_blocked_max_matches_brute_force(shape, block):
    q, k = _data(*shape, seed=sum(shape))
    v, i = max_cosine_similarity(q, k, block_size=block, backend="torch")
    rv, ri = ref.max_cosine_similarity(q, k)
    torch.testing.assert_close(v, rv, rtol=0, atol=1e-6)
    assert torch.equal(i, ri)
    assert i.dtype == torch.int64 and v.shape == (shape[0],)


def test_blocked_is_the_older_name_of_the_torch_backend():
    q, k = _data(9, 13, 5, seed=1)
    for got, want in zip(max_cosine_similarity(q, k, backend="blocked", block_size=4),
                         max_cosine_similarity(q, k, backend="torch", block_size=4)):  # fmt: skip
        assert torch.equal(got, want)


def test_ties_and_zero_rows_follow_the_convention():
    q, k = _one_hot_data()
    for block in [(1, 1), (3, 2), (8, 8)]:
        v, i = max_cosine_similarity(q, k, block_size=block, backend="torch")
        # q0=e0: keys 1 and 3 both cos 1 -> lowest index 1. q1=e1: keys 0,5,7 -> 0.
        # q2=0: cosine 0 everywhere -> index 0. q3=e3: orthogonal to all -> 0 everywhere -> index 0.
        # q5=-e0: best is 0 (orthogonal keys), first such key is 0.
        assert i.tolist() == [1, 0, 0, 0, 4, 0, 6, 0]
        assert v[:5].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
        assert v[5].item() == 0.0
        torch.testing.assert_close(v[6], torch.tensor(2**-0.5))
        rv, ri = ref.max_cosine_similarity(q, k)
        assert torch.equal(i, ri) and torch.equal(v, rv)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_top_n_matches_stable_sort_with_ties(n):
    q, k = _one_hot_data()
    for block in [(2, 3), (8, 8)]:
        v, i = top_n_cosine_neighbours(q, k, n, block_size=block)
        rv, ri = ref.top_n_cosine_neighbours(q, k, n)
        assert torch.equal(i, ri), (block, i, ri)
        assert torch.equal(v, rv)


def test_top_n_random_non_multiple_sizes():
    q, k = _data(45, 77, 21, seed=3)
    v, i = top_n_cosine_neighbours(q, k, 5, block_size=(16, 10))
    rv, ri = ref.top_n_cosine_neighbours(q, k, 5)
    torch.testing.assert_close(v, rv, rtol=0, atol=1e-6)
    assert torch.equal(i, ri)


@pytest.mark.parametrize("tau", [-1.0, 0.0, 0.3, 0.99])
def test_pairs_above_matches_brute_force(tau):
    q, k = _data(33, 41, 5, seed=7)
    qi, ki, c = cosine_pairs_above(q, k, tau, block_size=(8, 13))
    rq, rk, rc = ref.cosine_pairs_above(q, k, tau)
    assert torch.equal(qi, rq) and torch.equal(ki, rk)
    torch.testing.assert_close(c, rc, rtol=0, atol=1e-6)
    if tau == -1.0:
        assert qi.numel() == 33 * 41


def test_pairs_sorted_and_tie_exact():
    q, k = _one_hot_data()
    qi, ki, c = cosine_pairs_above(q, k, 1.0, block_size=(3, 3))
    assert list(zip(qi.tolist(), ki.tolist())) == [(0, 1), (0, 3), (1, 0), (1, 5), (1, 7), (4, 4)]
    assert torch.all(c == 1.0)


def test_float64_inputs_stay_float64():
    q, k = _data(10, 12, 4, dtype=torch.float64)
    v, _ = max_cosine_similarity(q, k)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, ref.max_cosine_similarity(q, k)[0])


@pytest.mark.parametrize(
    "q, k, err",
    [
        (torch.randn(3), torch.randn(3, 4), ValueError),
        (torch.randn(3, 4), torch.randn(3, 5), ValueError),
        (torch.ones(3, 4, dtype=torch.int64), torch.randn(3, 4), TypeError),
        (torch.randn(3, 4), torch.randn(0, 4), ValueError),
        (torch.tensor([[float("nan"), 1.0]]), torch.randn(3, 2), ValueError),
        ([[1.0]], torch.randn(3, 1), TypeError),
    ],
)
def test_invalid_inputs_raise(q, k, err):
    with pytest.raises(err):
        max_cosine_similarity(q, k)


def test_invalid_options_raise():
    q, k = _data(4, 5, 3)
    with pytest.raises(ValueError):
        top_n_cosine_neighbours(q, k, 6)
    with pytest.raises(ValueError):
        cosine_pairs_above(q, k, 1.5)
    with pytest.raises(ValueError, match="one of"):
        max_cosine_similarity(q, k, backend="gpu")
    with pytest.raises(ValueError, match="no C\\+\\+ kernel"):
        max_cosine_similarity(q, k, backend="cpp")
    with pytest.raises(ValueError):
        max_cosine_similarity(q, k, block_size=0, backend="torch")


TRITON_SCRIPT = textwrap.dedent(
    """
    import torch
    from sae_fast.kernels import max_cosine_reference as ref, max_cosine_triton
    from sae_fast.kernels.cosine_rows import cosine_matrix
    from sae_fast.kernels.max_cosine import max_cosine_similarity

    g = torch.Generator().manual_seed(0)
    for (m1, m0, d) in [(1, 1, 3), (37, 53, 19), (70, 150, 40)]:
        q, k = torch.randn(m1, d, generator=g), torch.randn(m0, d, generator=g)
        k[m0 // 2] = 0
        q[m1 // 2] = 0
        rv, ri = ref.max_cosine_similarity(q, k)
        for precision, atol in [("ieee", 1e-6), ("tf32", 1e-6), ("bf16", 2e-2)]:
            v, i = max_cosine_triton.max_cosine_similarity(q, k, precision=precision, block_m=16, block_n=32, block_d=16)
            assert (v - rv).abs().max() <= atol, (precision, (v - rv).abs().max())
            if precision == "bf16":
                # bf16 may pick a near-tied key; its true cosine must still be within tolerance.
                true = cosine_matrix(q, k).gather(1, i[:, None]).squeeze(1)
                assert (true - rv).abs().max() <= atol
            else:
                assert torch.equal(i, ri), precision
    eye = torch.eye(16)
    keys = torch.stack([eye[1], eye[0], torch.zeros(16), eye[0]] + [eye[3]] * 30 + [eye[0]])
    queries = torch.stack([eye[0], eye[1], torch.zeros(16), eye[3], eye[9]])
    v, i = max_cosine_similarity(queries, keys, backend="triton", exact=True, block_size=16)
    assert i.tolist() == [1, 0, 0, 4, 0], i.tolist()
    assert v.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0], v.tolist()
    print("TRITON_OK")
    """
)


def test_triton_kernel_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TRITON_OK" in result.stdout
