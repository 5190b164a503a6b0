"""evaluate(): formulas against direct computation, theta in eval mode, CE degradation on a tiny model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sae_fast import BatchTopKSAE, TopKSAE
from sae_fast.activations import activation_rows, tiny_random_model
from sae_fast.activations.ce_loss import next_token_loss
from sae_fast.evaluation import EvalConfig, evaluate


def trained_ish_topk(d_in: int = 12, d_sae: int = 40, k: int = 3) -> TopKSAE:
    sae = TopKSAE(d_in, d_sae, k, seed=4)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
    return sae


def test_metrics_match_direct_computation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 12, generator=g) * 2 + 5  # a large mean tests the shifted accumulation
    sae = trained_ish_topk()
    result = evaluate(sae, x, batch_size=128)  # 8 uneven batches

    with torch.no_grad():
        x_hat = sae(x)
        codes = sae.encode(x)
    l0 = (codes != 0).sum(dim=1)
    nmse = ((x - x_hat).double().pow(2).sum() / (x - x.mean(0)).double().pow(2).sum()).item()
    assert result.n_tokens == 1000
    assert result.nmse == pytest.approx(nmse, rel=1e-6)
    assert result.fraction_variance_explained == pytest.approx(1 - nmse, rel=1e-6)
    assert result.mean_l0 == pytest.approx(l0.double().mean().item())
    assert result.l0_histogram == torch.bincount(l0).tolist()
    never_fired = int(((codes != 0).sum(0) == 0).sum())
    assert result.n_dead == never_fired and result.dead_fraction == never_fired / 40
    assert result.ce_clean is None and result.ce_degradation is None


def test_accepts_numpy_memmap_and_iterables(tmp_path):
    x = torch.randn(300, 12)
    sae = trained_ish_topk()
    path = tmp_path / "acts.npy"
    np.save(path, x.numpy().astype(np.float16))
    memmap = np.load(path, mmap_mode="r")
    from_memmap = evaluate(sae, memmap, batch_size=64)
    direct = evaluate(sae, torch.from_numpy(memmap.astype(np.float32)))
    from_batches = evaluate(sae, list(torch.from_numpy(memmap.astype(np.float32)).split(100)))
    assert from_memmap.nmse == pytest.approx(direct.nmse, rel=1e-9)
    assert from_batches.l0_histogram == direct.l0_histogram


def test_batchtopk_is_evaluated_with_its_threshold():
    x = torch.randn(512, 12)
    sae = BatchTopKSAE(12, 40, 3, seed=0)
    with pytest.raises(ValueError, match="theta was never estimated"):
        evaluate(sae, x)
    sae.set_threshold(0.3)
    result = evaluate(sae, x)
    with torch.no_grad():
        pre = sae.pre_activations(x)
    assert result.mean_l0 == pytest.approx((pre > 0.3).sum(1).double().mean().item())
    assert sae.training  # the caller's mode is restored


def test_ce_degradation_on_tiny_model():
    model = tiny_random_model(d_model=32, n_layers=2, seed=0)
    hook = "blocks.0.hook_resid_post"
    texts = ["The quick brown fox jumps over the lazy dog. " * 4, "Sparse autoencoders find features. " * 4]
    tokens = torch.stack([model.tokenizer(t, return_tensors="pt")["input_ids"][0, :40] for t in texts])
    acts = activation_rows(model, tokens, hook, first_position=1)
    sae = TopKSAE(32, 64, 8, seed=0)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    result = evaluate(sae, acts, model=model, tokens=tokens, hook_name=hook, ce_batch_size=1)

    # Direct computation: splice by hand at the hook on positions 1: (position 0 stays clean).
    def loss_with(replace):
        def hook_fn(activation, hook):
            out = activation.clone()
            out[:, 1:] = replace(activation[:, 1:])
            return out
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, return_type="logits", fwd_hooks=[(hook, hook_fn)])
        return float(next_token_loss(logits, tokens, first_position=1))

    with torch.no_grad():
        clean = float(next_token_loss(model(tokens, return_type="logits"), tokens, first_position=1))
    spliced = loss_with(lambda a: sae(a.reshape(-1, 32)).reshape(a.shape))
    zero = loss_with(torch.zeros_like)
    mean = loss_with(lambda a: acts.mean(0).expand_as(a))
    assert result.ce_clean == pytest.approx(clean, rel=1e-5)
    assert result.ce_sae == pytest.approx(spliced, rel=1e-5)
    assert result.ce_degradation == pytest.approx(spliced - clean, abs=1e-5)
    assert result.ce_zero_ablation == pytest.approx(zero, rel=1e-5)
    assert result.ce_mean_ablation == pytest.approx(mean, rel=1e-5)
    r = result
    assert r.ce_loss_recovered_zero == pytest.approx((r.ce_zero_ablation - r.ce_sae) / (r.ce_zero_ablation - r.ce_clean))
    assert r.ce_loss_recovered_mean == pytest.approx((r.ce_mean_ablation - r.ce_sae) / (r.ce_mean_ablation - r.ce_clean))
    assert result.ce_sequences == 2 and math.isfinite(result.nmse)


def test_invalid_arguments():
    sae = trained_ish_topk()
    with pytest.raises(ValueError, match="model, tokens and hook_name together"):
        evaluate(sae, torch.randn(10, 12), model=object())
    with pytest.raises(ValueError, match="n_tokens >= 1"):
        evaluate(sae, torch.randn(0, 12))
    with pytest.raises(TypeError, match="SparseAutoencoder"):
        evaluate("sae", torch.randn(10, 12))


def test_config_and_keywords_are_one_evaluation():
    sae = trained_ish_topk()
    x = torch.randn(300, 12)
    by_config = evaluate(sae, x, EvalConfig(batch_size=7))
    by_keyword = evaluate(sae, x, batch_size=7)
    assert by_config.to_dict() == by_keyword.to_dict()
    # keywords replace the fields of a given config and keep the others
    merged = EvalConfig.from_keywords(EvalConfig(batch_size=7, progress=True), {"batch_size": 9})
    assert merged == EvalConfig(batch_size=9, progress=True)
    with pytest.raises(TypeError, match="unknown keyword.*batch_size"):
        evaluate(sae, x, batchsize=7)
    with pytest.raises(TypeError, match="EvalConfig"):
        evaluate(sae, x, {"batch_size": 7})
    with pytest.raises(ValueError, match="batch_size"):
        EvalConfig(batch_size=0)
    with pytest.raises(ValueError, match="integer tensor"):
        EvalConfig(model=object(), tokens=torch.randn(2, 5), hook_name="h")


def test_reference_losses_are_reused():
    model = tiny_random_model(d_model=32, n_layers=2, seed=0)
    hook = "blocks.0.hook_resid_post"
    tokens = torch.randint(3, 90, (3, 24), generator=torch.Generator().manual_seed(0))
    acts = activation_rows(model, tokens, hook, first_position=1)
    first = evaluate(TopKSAE(32, 64, 8, seed=0), acts, model=model, tokens=tokens, hook_name=hook)
    second_sae = TopKSAE(32, 64, 4, seed=1)
    full = evaluate(second_sae, acts, model=model, tokens=tokens, hook_name=hook)
    reused = evaluate(second_sae, acts, model=model, tokens=tokens, hook_name=hook, reference_losses=first)
    for key in ("ce_clean", "ce_sae", "ce_zero_ablation", "ce_mean_ablation", "ce_degradation",
                "ce_loss_recovered_zero", "ce_loss_recovered_mean", "nmse"):
        assert getattr(reused, key) == pytest.approx(getattr(full, key), rel=1e-6), key
    with pytest.raises(ValueError, match="reference_losses lacks"):
        evaluate(second_sae, acts, model=model, tokens=tokens, hook_name=hook, reference_losses={"ce_clean": 1.0})


def test_report_is_written_from_measured_results(tmp_path):
    from sae_fast.report import write_report

    x = torch.randn(400, 12)
    result = evaluate(trained_ish_topk(), x)
    history = {"topk": [{"step": 1, "tokens": 64, "nmse": 0.9, "l0": 3.0, "dead_latents": 0},
                        {"step": 2, "tokens": 128, "nmse": 0.5, "l0": 3.0, "dead_latents": 1}]}
    report = write_report(tmp_path, title="t", history=history, results={"topk": result},
                          setup={"model": "none"}, timings={"train": 1.5})
    text = report.read_text()
    assert f"{result.nmse:.4f}" in text and "| topk | 2 | 128 | 0.5000 |" in text
    assert (tmp_path / "training_curves.png").stat().st_size > 0 and (tmp_path / "l0_histograms.png").is_file()
    assert json.loads((tmp_path / "results.json").read_text())["results"]["topk"]["n_tokens"] == 400


def test_progress_bar_knows_its_total(capsys):
    sae = trained_ish_topk()
    evaluate(sae, torch.randn(10, 12), batch_size=4, progress=True)
    evaluate(sae, [torch.randn(3, 12), torch.randn(3, 12)], progress=True)  # a list has a length too
    err = capsys.readouterr().err
    assert "3/3" in err and "2/2" in err
