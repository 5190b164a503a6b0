"""ReconstructionSums over batches equals the metrics computed on all tokens at once."""

from __future__ import annotations

import math

import pytest
import torch

from sae_fast.sae.reconstruction_sums import ReconstructionSums


@pytest.mark.parametrize("seed", range(4))
def test_batched_sums_match_the_formulas_on_all_tokens(seed):
    g = torch.Generator().manual_seed(seed)
    n, d = int(torch.randint(5, 300, (1,), generator=g)), int(torch.randint(1, 40, (1,), generator=g))
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 3 + 1000  # a large mean tests the shift
    x_hat = x + torch.randn(n, d, generator=g, dtype=torch.float64)
    counts = torch.randint(0, 9, (n,), generator=g)
    sums, token_errors = ReconstructionSums(d), []
    cuts = sorted(set(torch.randint(1, n, (3,), generator=g).tolist()))
    for start, stop in zip([0, *cuts], [*cuts, n]):
        token_errors.append(sums.add(x[start:stop].float(), x_hat[start:stop].float(), counts[start:stop]))
    x32, x_hat32 = x.float().double(), x_hat.float().double()
    error = (x32 - x_hat32).pow(2).sum(dim=1)
    variance = (x32 - x32.mean(dim=0)).pow(2).sum()
    torch.testing.assert_close(torch.cat(token_errors), error)
    assert sums.n_tokens == n
    assert sums.mse() == pytest.approx(float(error.sum()) / (n * d), rel=1e-12)
    assert sums.nmse() == pytest.approx(float(error.sum() / variance), rel=1e-6)
    assert sums.fraction_variance_explained() == pytest.approx(1 - float(error.sum() / variance), rel=1e-6)
    torch.testing.assert_close(sums.mean, x32.mean(dim=0))
    assert sums.mean_l0() == pytest.approx(float(counts.double().mean()), rel=1e-12)
    assert sums.l0_histogram.tolist() == torch.bincount(counts).tolist()


def test_constant_tokens_have_nan_nmse_and_misuse_is_refused():
    sums = ReconstructionSums(3)
    with pytest.raises(ValueError, match="no tokens"):
        sums.mse()
    sums.add(torch.ones(4, 3), torch.zeros(4, 3))
    assert math.isnan(sums.nmse()) and sums.mse() == 1.0
    with pytest.raises(ValueError, match="active_counts"):
        sums.mean_l0()
    with pytest.raises(ValueError, match=r"\[n_tokens, 3\]"):
        sums.add(torch.ones(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="one per token"):
        sums.add(torch.ones(4, 3), torch.ones(4, 3), torch.ones(3, dtype=torch.int64))
