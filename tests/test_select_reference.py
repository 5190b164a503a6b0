"""The plain-torch selection ops are the spec: check them against definitions written another way."""

import itertools

import pytest
import torch

from sae_fast.kernels.select_reference import (
    batch_topk_select,
    subset_topk_select,
    threshold_select,
    topk_select,
)


def _kept_by_definition(pre: torch.Tensor, budget: int) -> set[tuple[int, int]]:
    """Rank (value desc, flat index asc) by brute force and keep the first positive `budget`."""
    n, m = pre.shape
    entries = sorted(((-float(pre[i, j]), i * m + j) for i, j in itertools.product(range(n), range(m))))
    kept = [flat for neg, flat in entries if -neg > 0][:budget]
    return {(flat // m, flat % m) for flat in kept}


def _pairs(codes):
    return set(zip(codes.token_indices().tolist(), codes.latent_indices.tolist()))


@pytest.mark.parametrize("seed", range(5))
def test_batch_topk_matches_definition_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    pre = torch.relu(torch.randint(-2, 4, (7, 9), generator=g).float())  # heavy ties and zeros
    for budget in (0, 1, 5, 17, 63, 100):
        codes = batch_topk_select(pre, budget)
        assert _pairs(codes) == _kept_by_definition(pre, budget)
        assert codes.nnz == min(budget, int((pre > 0).sum()))


def test_batch_topk_keeps_exactly_n_times_k_distinct_values_and_varies_per_token():
    pre = torch.relu(torch.randn(128, 64)) + torch.rand(128, 64) * 1e-3
    codes = batch_topk_select(pre, 128 * 4)
    assert codes.nnz == 128 * 4
    assert codes.counts().min() < 4 < codes.counts().max()
    # canonical CSR order: latent indices ascending inside each row
    for i in range(codes.n_tokens):
        row = codes.latent_indices[codes.row_offsets[i] : codes.row_offsets[i + 1]]
        assert torch.all(row[1:] > row[:-1])
    assert torch.equal(codes.values, pre[codes.token_indices(), codes.latent_indices])


def test_topk_per_row_and_rows_without_positive_values():
    pre = torch.relu(torch.randn(10, 20))
    pre[3] = 0
    codes = topk_select(pre, 5)
    counts = codes.counts()
    assert counts[3] == 0
    for i in range(10):
        assert counts[i] == min(5, int((pre[i] > 0).sum()))
        assert _pairs(topk_select(pre[i : i + 1], 5)) == {(0, j) for j in range(20) if (i, j) in _pairs(codes)}


def test_threshold_select_is_strict_and_accepts_per_latent_thresholds():
    pre = torch.tensor([[0.5, 1.0, 2.0], [0.0, 1.5, 0.2]])
    assert _pairs(threshold_select(pre, 1.0)) == {(0, 2), (1, 1)}
    per_latent = torch.tensor([0.1, 1.6, 0.1])
    assert _pairs(threshold_select(pre, per_latent)) == {(0, 0), (0, 2), (1, 2)}


@pytest.mark.parametrize("seed", range(4))
def test_subset_topk_matches_definition_with_ties(seed):
    """Per row, the k largest positive entries among the subset; ties to the lower column."""
    g = torch.Generator().manual_seed(seed)
    n, m, k = 6, 15, 3
    pre = torch.randint(-1, 4, (n, m), generator=g).float()
    latents = torch.randperm(m, generator=g)[:7].sort().values
    codes = subset_topk_select(pre, latents, k)
    want = set()
    for i in range(n):
        ranked = sorted((-float(pre[i, j]), j) for j in latents.tolist() if pre[i, j] > 0)
        want |= {(i, j) for _, j in ranked[:k]}
    assert _pairs(codes) == want
    assert codes.d_sae == m
    assert torch.equal(codes.values, pre[codes.token_indices(), codes.latent_indices])
    for i in range(n):  # canonical order survives the relabelling
        row = codes.latent_indices[codes.row_offsets[i] : codes.row_offsets[i + 1]]
        assert torch.all(row[1:] > row[:-1])


def test_subset_topk_rejects_bad_subsets():
    pre = torch.rand(3, 5)
    with pytest.raises(TypeError, match="int64"):
        subset_topk_select(pre, torch.tensor([0.0, 1.0]), 1)
    with pytest.raises(TypeError, match="int64"):
        subset_topk_select(pre, [0, 1], 1)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        subset_topk_select(pre, torch.tensor([1, 5]), 1)
    with pytest.raises(ValueError, match="ascending"):
        subset_topk_select(pre, torch.tensor([3, 1]), 1)
    with pytest.raises(ValueError, match="ascending"):
        subset_topk_select(pre, torch.tensor([1, 1]), 1)
