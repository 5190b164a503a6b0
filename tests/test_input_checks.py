"""Inputs that used to pass silently: wrong widths, values that overflow the SAE's dtype, Parameters, bad theta."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sae_fast
from sae_fast import BatchTopKSAE, TopKSAE
from sae_fast.evaluation import evaluate
from sae_fast.meta.explain import collect_top_activations
from sae_fast.similarity import max_cosine_similarity_reference
from sae_fast.stitching.encoded import encode_eval_set
from sae_fast.training import ShuffledBatches, fixed_size_batches
from sae_fast.validation import check_int, check_positive_int

WIDTH_ERROR = r"last dimension d_in=512, got shape \(64, 576\)"
OVERFLOW_ERROR = r"overflows the SAE's dtype torch.float32 in 1 token\(s\) \(first: \[1\]\)"


# ------------------------------------------------------------------------------------ wrong width
@pytest.mark.parametrize(
    "wrap", [lambda x: x, lambda x: x.numpy(), lambda x: [x]], ids=["tensor", "numpy", "batches"]
)
def test_evaluate_refuses_activations_of_another_width(wrap):
    sae = TopKSAE(512, 1024, 8, seed=0)
    # 64 * 576 is a multiple of 512: a reshape would have made 72 bogus tokens of it.
    with pytest.raises(ValueError, match=WIDTH_ERROR):
        evaluate(sae, wrap(torch.randn(64, 576)))


def test_top_activations_refuse_activations_of_another_width():
    with pytest.raises(ValueError, match=WIDTH_ERROR):
        collect_top_activations(TopKSAE(512, 1024, 8, seed=0), [torch.randn(64, 576)])


# ------------------------------------------------------------------------------------ finite after the cast
def test_float64_inputs_that_overflow_float32_are_refused():
    sae = TopKSAE(8, 16, 2, seed=0)
    x = torch.randn(3, 8, dtype=torch.float64)
    x[1, 2] = 1e300  # finite in float64, inf in the SAE's float32
    for run in (sae, sae.encode, sae.encode_sparse, sae.training_loss):
        with pytest.raises(ValueError, match=OVERFLOW_ERROR):
            run(x)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        sae(x)
    x[1, 2] = 1e30  # within float32: accepted
    assert torch.isfinite(sae(x)).all()


def test_stitching_checks_finiteness_after_the_cast():
    small, large = TopKSAE(8, 16, 2, seed=0), TopKSAE(8, 32, 2, seed=1)
    x = torch.randn(4, 8, dtype=torch.float64)
    x[0, 0] = -1e300
    with pytest.raises(ValueError, match="overflows the SAE's dtype"):
        encode_eval_set(small, large, x)


@pytest.mark.parametrize("theta", [float("inf"), float("nan"), 1e300, 0.0, -1.0])
def test_set_threshold_refuses_values_that_are_not_a_finite_positive_theta(theta):
    sae = BatchTopKSAE(8, 16, 2, seed=0)
    with pytest.raises(ValueError, match="theta must be > 0 and finite"):
        sae.set_threshold(theta)
    assert float(sae.threshold) == 0 and not bool(sae.threshold_frozen)
    sae.set_threshold(0.5)
    assert float(sae.threshold) == 0.5


# ------------------------------------------------------------------------------------ max cosine
@pytest.mark.parametrize("backend", ["blocked", "triton"])
def test_max_cosine_similarity_takes_parameters(backend):
    small, large = TopKSAE(8, 16, 2, seed=0), TopKSAE(8, 40, 2, seed=1)
    values, indices = sae_fast.max_cosine_similarity(large.W_dec, small.W_dec, backend=backend, block_size=16)
    assert not values.requires_grad and not indices.requires_grad
    expected_values, expected_indices = max_cosine_similarity_reference(large.W_dec.detach(), small.W_dec.detach())
    assert torch.allclose(values, expected_values, atol=1e-3) and torch.equal(indices, expected_indices)


def test_other_similarity_entry_points_take_parameters():
    from sae_fast.similarity import cosine_pairs_above, top_n_cosine_neighbours

    W = TopKSAE(8, 16, 2, seed=0).W_dec
    values, _ = top_n_cosine_neighbours(W, W, 2)
    _, _, cos = cosine_pairs_above(W, W, 0.5)
    assert not values.requires_grad and not cos.requires_grad


def test_max_cosine_similarity_is_exported_at_the_top_level():
    assert "max_cosine_similarity" in sae_fast.__all__
    assert sae_fast.max_cosine_similarity is sae_fast.similarity.max_cosine_similarity
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        sae_fast.no_such_name  # noqa: B018


def test_evaluate_accepts_numpy_of_the_right_width():
    sae = TopKSAE(8, 16, 2, seed=0)
    result = evaluate(sae, np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32), batch_size=7)
    assert result.n_tokens == 20


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_int(True, "n", lower=0), TypeError, "n must be an int, got bool"),
    (lambda: check_int(2.0, "n", lower=0), TypeError, "n must be an int, got float"),
    (lambda: check_int(-1, "layer", lower=0), ValueError, "layer must be >= 0, got -1"),
    (lambda: check_int(5, "rank", lower=0, upper=3, upper_name="world_size - 1"), ValueError,
     r"rank must be <= world_size - 1 \(3\), got 5"),
    (lambda: check_positive_int(0, "epochs", hint="or None"), ValueError, "epochs must be >= 1, got 0; or None"),
])
def test_integer_checks_say_what_was_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_integer_checks_return_the_value_in_range():
    assert check_int(0, "n", lower=0) == 0 and check_positive_int(3, "n", upper=3) == 3


@pytest.mark.parametrize("make", [
    lambda: ShuffledBatches(torch.zeros(8, 2), 0),
    lambda: ShuffledBatches(torch.zeros(8, 2), 4, epochs=0),
    lambda: ShuffledBatches(torch.zeros(8, 2), 4, rank=2, world_size=2),
    lambda: fixed_size_batches([torch.zeros(8, 2)], -1).__next__(),
])
def test_batch_streams_refuse_bad_sizes(make):
    with pytest.raises(ValueError, match="must be >= 1|must be <="):
        make()
