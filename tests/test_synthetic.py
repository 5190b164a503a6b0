"""Synthetic compositional activations: reproducibility, known sparsity, recovery scoring."""

import pytest
import torch

from sae_fast.synthetic import (
    ATOM,
    COMPOSITION,
    OTHER,
    CompositionalConfig,
    CompositionalGenerator,
    SyntheticBenchmarkConfig,
    run_synthetic_benchmark,
    score_dictionary,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny matrices: a second thread only adds synchronisation cost on a shared 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_same_seed_same_atoms_and_samples():
    a, b = CompositionalGenerator(CompositionalConfig(seed=3)), CompositionalGenerator(CompositionalConfig(seed=3))
    assert torch.equal(a.truth.atoms, b.truth.atoms)
    xa = a.sample(500, torch.Generator().manual_seed(7))
    xb = b.sample(500, torch.Generator().manual_seed(7))
    assert torch.equal(xa.x, xb.x) and torch.equal(xa.coefficients, xb.coefficients)
    other = CompositionalGenerator(CompositionalConfig(seed=4))
    assert not torch.allclose(a.truth.atoms, other.truth.atoms)
    assert not torch.equal(xa.x, a.sample(500, torch.Generator().manual_seed(8)).x)


def test_stream_replays_and_has_full_batches():
    generator = CompositionalGenerator()
    stream = generator.stream(1000, 128, seed=5)
    first, second = list(stream), list(stream)
    assert len(first) == len(stream) == 7
    assert all(b.shape == (128, 64) for b in first)
    assert all(torch.equal(x, y) for x, y in zip(first, second))


def test_atoms_orthonormal_and_families_labelled():
    config = CompositionalConfig(d=32, family_sizes=(3, 3), n_independent=5)
    truth = CompositionalGenerator(config).truth
    assert truth.atoms.shape == (11, 32)
    torch.testing.assert_close(truth.atoms @ truth.atoms.T, torch.eye(11), atol=1e-5, rtol=0)
    assert truth.family_of.tolist() == [0, 0, 0, 1, 1, 1] + [-1] * 5


def test_known_sparsity_and_structure():
    config = CompositionalConfig(family_sizes=(3, 4, 2), family_probability=(1.0, 0.5, 0.25), n_independent=10,
                                 independent_probability=0.1, noise_std=0.0)
    generator = CompositionalGenerator(config)
    batch = generator.sample(40_000, torch.Generator().manual_seed(0))
    active = batch.coefficients > 0
    assert config.expected_l0 == pytest.approx(1.0 + 0.5 + 0.25 + 1.0)
    assert active.sum(1).float().mean().item() == pytest.approx(config.expected_l0, abs=0.03)
    # At most one value per family, and family 0 (p = 1) is always present.
    family_of = generator.truth.family_of
    for family, p in enumerate(config.family_probabilities):
        per_sample = active[:, family_of == family].sum(1)
        assert per_sample.max() <= 1
        assert per_sample.float().mean().item() == pytest.approx(p, abs=0.015)
    low, high = config.magnitude_range
    values = batch.coefficients[active]
    assert values.min() >= low and values.max() <= high
    torch.testing.assert_close(batch.x, batch.coefficients @ generator.truth.atoms)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="orthogonal"):
        CompositionalConfig(d=8, family_sizes=(4, 4), n_independent=4)
    with pytest.raises(ValueError, match="probabilities"):
        CompositionalConfig(family_probability=1.5)
    with pytest.raises(ValueError, match="magnitude_range"):
        CompositionalConfig(magnitude_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="family_probability has"):
        CompositionalConfig(family_probability=(0.5,))


def test_true_atoms_score_perfectly():
    truth = CompositionalGenerator().truth
    permuted = truth.atoms[torch.randperm(truth.n_atoms)] * 3.0  # order and scale must not matter
    score = score_dictionary(permuted, truth)
    assert score.atoms_recovered == truth.n_atoms and score.fraction_recovered == 1.0
    assert score.fraction_family_atoms_recovered == 1.0
    assert score.count(ATOM) == truth.n_atoms and score.n_compositions == 0


def test_compositions_detected_and_noise_rejected():
    truth = CompositionalGenerator(CompositionalConfig(family_sizes=(3, 3), n_independent=2)).truth
    directions, members = truth.compositions()
    assert len(members) == 9 and all(truth.family_of[m[0]] != truth.family_of[m[1]] for m in members)
    random_rows = torch.randn(5, truth.atoms.shape[1])
    dictionary = torch.cat([truth.atoms[:3], directions, random_rows])  # colours, all 9 colour-shapes, noise
    score = score_dictionary(dictionary, truth)
    assert score.latent_kind[:3].tolist() == [ATOM] * 3
    assert score.latent_kind[3:12].tolist() == [COMPOSITION] * 9
    assert score.latent_kind[12:].tolist() == [OTHER] * 5
    assert score.distinct_compositions == 9
    assert score.atoms_recovered == 3  # the shapes are only present inside compositions
    assert score.to_dict()["latents"] == {"atom": 3, "composition": 9, "other": 5}


def test_scoring_validates_input():
    truth = CompositionalGenerator().truth
    with pytest.raises(ValueError, match="dimension"):
        score_dictionary(torch.randn(4, 10), truth)
    with pytest.raises(ValueError, match="threshold"):
        score_dictionary(truth.atoms, truth, threshold=1.5)


def test_tiny_benchmark_runs_and_small_sae_learns_atoms():
    config = SyntheticBenchmarkConfig(
        world=CompositionalConfig(d=16, family_sizes=(3, 3), n_independent=2, family_probability=0.8,
                                  independent_probability=0.05),
        sizes=(8, 16), ks=(2,), eval_tokens=4000, meta_epochs=100, meta_learn_decoder_bias=(False,), backend="torch",
        train={"total_tokens": 60_000, "batch_size": 256, "lr": 1e-2},
    )
    report = run_synthetic_benchmark(config)
    assert [r["d_sae"] for r in report["sae"]] == [8, 16]
    for row in report["sae"]:
        assert 0.5 < row["fve"] <= 1.0
        assert row["alive"] <= row["d_sae"]
    # k=2 matches the true L0 (1.7): the 8-latent SAE finds the atoms (measured: all 6 family atoms).
    assert report["sae"][0]["family_atoms_recovered"] >= 5
    assert len(report["meta"]) == 1 and 0.0 <= report["meta"][0]["meta_fve"] <= 1.0
