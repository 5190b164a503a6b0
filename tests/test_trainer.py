"""Trainer: loss falls, several SAEs in one pass, JSONL log, micro-batches, input validation."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from sae_fast import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE
from sae_fast.training import ShuffledBatches, TrainConfig, Trainer, fixed_size_batches

D_IN, D_SAE, K = 16, 64, 4


def sparse_synthetic(n: int = 4096, seed: int = 0) -> torch.Tensor:
    """Activations that really are sparse combinations of 64 unit directions plus an offset."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(D_SAE, D_IN, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)
    active = torch.rand(n, D_SAE, generator=g) < 3 / D_SAE
    codes = active * (1 + torch.rand(n, D_SAE, generator=g))
    return codes @ directions + 0.3


def quiet_config(**overrides) -> TrainConfig:
    base = dict(batch_size=128, total_tokens=None, lr=3e-3, log_every=5, progress=False)
    base.update(overrides)
    return TrainConfig(**base)


def test_paper_defaults():
    config = TrainConfig()
    assert config.lr == 3e-4 and config.betas == (0.9, 0.99) and config.batch_size == 4096
    assert config.total_tokens == 1_000_000_000 and config.init_b_dec_from_data


def test_validate_reports_without_changing_the_config():
    config = TrainConfig(betas=[0.8, 0.9])
    assert config.betas == (0.8, 0.9)  # construction normalises
    config.betas = [0.5, 0.6]
    before = dataclasses.asdict(config)
    assert config.validate() is config
    assert dataclasses.asdict(config) == before and config.betas == [0.5, 0.6]
    config.betas = (0.5, 1.5)
    with pytest.raises(ValueError, match="betas"):
        config.validate()


def test_loss_falls_for_several_saes_in_one_pass(tmp_path):
    data = sparse_synthetic()
    saes = {
        "batchtopk": BatchTopKSAE(D_IN, D_SAE, K, seed=1),
        "topk": TopKSAE(D_IN, D_SAE, K, seed=1),
        "jumprelu": JumpReLUSAE(D_IN, D_SAE, l0_coefficient=1e-3, seed=1),
        "relu": ReLUSAE(D_IN, D_SAE, 1e-3, seed=1),
    }
    log = tmp_path / "log.jsonl"
    config = quiet_config(log_jsonl=str(log), checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=10)
    result = Trainer(saes, config).train(ShuffledBatches(data, 128, epochs=3, seed=0))
    assert result.steps == 3 * (4096 // 128) and result.tokens_seen == result.steps * 128
    for name, history in result.history.items():
        first, last = history[0], history[-1]
        assert last["step"] == result.steps
        assert last["mse"] < 0.6 * first["mse"], (name, first["mse"], last["mse"])
        assert result.final_metrics[name]["nmse"] == pytest.approx(last["nmse"])
    assert result.final_metrics["batchtopk"]["l0"] == pytest.approx(K)  # batch average is exactly k
    assert result.final_metrics["topk"]["l0"] == pytest.approx(K)
    assert float(saes["batchtopk"].threshold) > 0  # theta was estimated during training
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["sae"] for r in records} == set(saes)
    steps = sorted({r["step"] for r in records})
    assert steps[0] == 1 and steps[-1] == result.steps and 5 in steps
    assert all({"loss", "mse", "l0", "nmse", "dead_latents", "tokens"} <= r.keys() for r in records)
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    # Decoder rows stay unit-norm after every step.
    for sae in saes.values():
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE), rtol=1e-5, atol=1e-5)


def test_b_dec_initialised_from_first_batch_mean():
    data = sparse_synthetic(512)
    sae = TopKSAE(D_IN, D_SAE, K, seed=1)
    batches = ShuffledBatches(data, 128, epochs=1, seed=3)
    first = next(iter(ShuffledBatches(data, 128, epochs=1, seed=3)))
    trainer = Trainer({"s": sae}, quiet_config(lr=1e-12, total_tokens=128))
    trainer.train(batches)
    torch.testing.assert_close(sae.b_dec.detach(), first.double().mean(0).float(), atol=1e-5, rtol=0)


def test_total_tokens_budget_stops_training():
    result = Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, quiet_config(total_tokens=1000)).train(
        ShuffledBatches(sparse_synthetic(), 128, epochs=None)
    )
    assert result.steps == 8 and result.tokens_seen == 1024


def test_micro_batches_equal_mean_of_shard_losses():
    """With micro_batches=2 the gradient is the mean of two independent batch-top-k halves."""
    data = sparse_synthetic(256)
    trained = BatchTopKSAE(D_IN, D_SAE, K, seed=1)
    manual = BatchTopKSAE(D_IN, D_SAE, K, seed=1)
    config = quiet_config(batch_size=256, micro_batches=2, init_b_dec_from_data=False, total_tokens=256)
    Trainer({"s": trained}, config).train([data])
    halves = data.chunk(2)
    loss = sum(manual.training_loss(h).loss for h in halves) / 2
    loss.backward()
    manual.remove_parallel_decoder_grad_()
    opt = torch.optim.Adam(manual.parameters(), lr=config.lr, betas=config.betas)
    opt.step()
    manual.after_optimizer_step_()
    for name, p in trained.named_parameters():
        torch.testing.assert_close(p, dict(manual.named_parameters())[name], rtol=1e-6, atol=1e-7)


def test_plain_iterables_and_fixed_size_batches():
    chunks = list(sparse_synthetic(1000).split(97))
    result = Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, quiet_config()).train(fixed_size_batches(chunks, 128))
    assert result.steps == 1000 // 128


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(batch_size=100, micro_batches=3)
    with pytest.raises(ValueError, match="resume"):
        TrainConfig(resume=True)
    with pytest.raises(ValueError, match="non-empty dict"):
        Trainer({}, quiet_config())
    with pytest.raises(ValueError, match="same d_in"):
        Trainer({"a": TopKSAE(8, 16, 2), "b": TopKSAE(16, 16, 2)}, quiet_config())
    trainer = Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, quiet_config())
    with pytest.raises(ValueError, match=r"expected a batch of shape \[128, 16\]"):
        trainer.train([torch.zeros(64, D_IN)])
    with pytest.raises(ValueError, match="no batches"):
        Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, quiet_config()).train([])


def test_progress_bar_total_is_the_work_that_runs(monkeypatch):
    import sae_fast.training.trainer as trainer_module

    totals = []
    real_tqdm = trainer_module.tqdm
    monkeypatch.setattr(trainer_module, "tqdm", lambda *a, **kw: totals.append(kw["total"]) or real_tqdm(*a, **kw))
    data = sparse_synthetic()[:512]
    # Two epochs of 4 batches end the run long before the default 1e9-token cap.
    default_cap = quiet_config(total_tokens=TrainConfig().total_tokens)
    result = Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, default_cap).train(
        ShuffledBatches(data, 128, epochs=2, seed=0))
    # A token cap reached before the epochs end.
    Trainer({"s": TopKSAE(D_IN, D_SAE, K, seed=1)}, quiet_config(total_tokens=300)).train(
        ShuffledBatches(data, 128, epochs=2, seed=0))
    assert result.steps == 8
    assert totals == [8, 3]
