"""The expected duration long loops print when they start."""

import torch

from sae_fast import TopKSAE
from sae_fast.duration import announce_duration, format_duration
from sae_fast.training import ShuffledBatches, TrainConfig, Trainer


def test_format_duration_picks_a_readable_unit():
    assert [format_duration(s) for s in (42, 210, 7560)] == ["42 s", "3.5 min", "2.1 h"]


def test_announce_duration_scales_the_measured_rate(capsys):
    announce_duration("x", measured=10, elapsed_s=2.0, remaining=600, unit="steps")
    assert "600 steps left, expected about 2.0 min (at the 5.00 steps/s of 10 steps just measured)" in \
        capsys.readouterr().err
    announce_duration("x", measured=10, elapsed_s=2.0, remaining=0, unit="steps")
    assert capsys.readouterr().err == ""


def test_training_announces_its_expected_duration_once(capsys):
    data = torch.randn(1280, 8)
    config = TrainConfig(batch_size=128, total_tokens=None, progress=True, log_every=100)
    Trainer({"s": TopKSAE(8, 32, 2, seed=0)}, config).train(ShuffledBatches(data, 128, epochs=1, seed=0))
    err = capsys.readouterr().err
    assert err.count("expected about") == 1 and "train SAEs: 6 steps left" in err
