"""The L1 coefficient steered to a target L0: direction, convergence, state, refusals."""

from __future__ import annotations

import math

import pytest
import torch

from sae_fast import ReLUSAE
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.training import TrainConfig, Trainer

D_IN, D_SAE, BATCH = 16, 64, 256
STEERED = [(ReLUSAE, "l1_coefficient")]


def data(steps: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps * BATCH, D_IN, generator=g) @ torch.randn(D_IN, D_IN, generator=g)


def train(sae, x: torch.Tensor, steps: int, **config):
    cfg = TrainConfig(lr=3e-3, batch_size=BATCH, total_tokens=steps * BATCH, progress=False, log_every=10 ** 6,
                      **config)
    trainer = Trainer({"sae": sae}, cfg)
    return trainer.train(x[i * BATCH:(i + 1) * BATCH] for i in range(steps))


def build(cls, name, start, **kwargs):
    return cls(D_IN, D_SAE, **{name: start}, seed=0, **kwargs)


@pytest.mark.parametrize("cls,name", STEERED)
def test_the_coefficient_moves_toward_the_target(cls, name):
    torch.manual_seed(0)
    x = data(5)
    dense = build(cls, name, 1e-3, target_l0=1.0)  # a fresh SAE fires on far more than 1 latent per token
    sparse = build(cls, name, 1e-3, target_l0=float(D_SAE))  # ... and on fewer than all of them
    train(dense, x, 5)
    train(sparse, x, 5)
    assert getattr(dense, name) > 1e-3 > getattr(sparse, name)


@pytest.mark.parametrize("cls,name", STEERED)
def test_training_reaches_the_target_l0(cls, name):
    torch.manual_seed(0)
    x = data(600)
    sae = build(cls, name, 0.05, target_l0=8.0)  # the default rate: a faster one overshoots by 100x first
    train(sae, x, 600)
    with torch.no_grad():
        l0 = float((sae.encode(x[-4096:]) > 0).sum(dim=-1).float().mean())
    assert abs(l0 - 8.0) < 0.2 * 8.0, f"{cls.__name__} ended at L0 {l0}"


@pytest.mark.parametrize("cls,name", STEERED)
def test_the_steered_coefficient_is_saved_loaded_and_resumed(cls, name, tmp_path):
    torch.manual_seed(0)
    x = data(12)
    straight = build(cls, name, 1e-3, target_l0=4.0)
    train(straight, x, 12)
    checkpoints = tmp_path / "ckpt"
    first = build(cls, name, 1e-3, target_l0=4.0)
    train(first, x, 6, checkpoint_dir=str(checkpoints), checkpoint_every=6)
    resumed = build(cls, name, 1e-3, target_l0=4.0)
    train(resumed, x, 12, checkpoint_dir=str(checkpoints), checkpoint_every=6, resume=True)
    assert getattr(resumed, name) == pytest.approx(getattr(straight, name), rel=1e-5)
    assert getattr(resumed, name) != pytest.approx(1e-3)
    save_pretrained(resumed, tmp_path / "sae")
    loaded = load_pretrained(tmp_path / "sae")
    assert getattr(loaded, name) == getattr(resumed, name)
    assert loaded.config_dict()["target_l0"] == 4.0 and loaded.config_dict()[name] == 1e-3  # where it started
    assert loaded.coefficient_statistics() == {name: getattr(resumed, name)}


@pytest.mark.parametrize("cls,name", STEERED)
def test_without_a_target_the_coefficient_is_the_constant(cls, name, tmp_path):
    sae = build(cls, name, 2e-3)
    train(sae, data(3), 3)
    assert getattr(sae, name) == 2e-3
    assert "sparsity_coefficient" not in sae.state_dict() and "target_l0" not in sae.config_dict()
    save_pretrained(sae, tmp_path / "plain")
    assert getattr(load_pretrained(tmp_path / "plain"), name) == 2e-3


@pytest.mark.parametrize("cls,name", STEERED)
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "8"])
def test_bad_targets_are_refused(cls, name, bad):
    with pytest.raises(ValueError, match="target_l0"):
        build(cls, name, 1e-3, target_l0=bad)


@pytest.mark.parametrize("cls,name", STEERED)
def test_bad_rates_and_a_zero_start_are_refused(cls, name):
    for rate in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="target_l0_rate"):
            build(cls, name, 1e-3, target_l0=4.0, target_l0_rate=rate)
    with pytest.raises(ValueError, match="starting point"):
        build(cls, name, 0.0, target_l0=4.0)
