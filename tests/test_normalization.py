"""Input normalisation inside the SAE (normalize_activations) and seeded initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from sae_fast.evaluation import evaluate
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE
from sae_fast.sae.normalization import LAYER_NORM_EPS
from sae_fast.training import TrainConfig, Trainer
from test_formats import make_trained_like

D_IN, D_SAE, K = 16, 48, 4
MODES = ["none", "expected_average_only_in", "layer_norm"]


def sink_activations(n=96, seed=0):
    """Activations with a large mean and a few 'attention sink' rows 100x the others' norm."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D_IN, generator=generator) * 2 + 5
    x[::32] *= 100
    return x


def reference_layer_norm(x):
    """The paper reference code's input_unit_norm, written out."""
    mean = x.mean(dim=-1, keepdim=True)
    centred = x - mean
    std = centred.std(dim=-1, keepdim=True)
    return centred / (std + LAYER_NORM_EPS), mean, std


def trained_like(cls, mode, **kwargs):
    return make_trained_like(cls, D_IN, D_SAE, data=sink_activations(), normalize_activations=mode, **kwargs)


def test_layer_norm_is_the_reference_input_unit_norm():
    ln = trained_like(BatchTopKSAE, "layer_norm")
    plain = BatchTopKSAE(D_IN, D_SAE, K, seed=0)
    plain.load_state_dict(ln.state_dict())
    plain.eval()
    x = sink_activations(seed=1)
    normalized, mean, std = reference_layer_norm(x)
    torch.testing.assert_close(ln.normalize_inputs(x), normalized, rtol=0, atol=0)
    torch.testing.assert_close(ln.encode(x), plain.encode(normalized))
    # Outputs map back with x_hat * std + mean, as the reference and SAELens do.
    torch.testing.assert_close(ln(x), plain(normalized) * std + mean)
    result = ln.reconstruct(x)
    torch.testing.assert_close(result.normalized_x_hat, plain(normalized))
    # Training loss is computed in the normalised space.
    ln.train()
    plain.train()
    torch.testing.assert_close(ln.training_loss(x).mse, plain.training_loss(normalized).mse)


def test_expected_average_scale_makes_the_mean_norm_sqrt_d_in():
    sae = BatchTopKSAE(D_IN, D_SAE, K, seed=0, normalize_activations="expected_average_only_in")
    x = sink_activations()
    with pytest.raises(ValueError, match="never estimated"):
        sae.eval().encode(x)
    sae.train()
    sae.training_loss(x)  # the first training batch estimates it
    scale = float(sae.activation_scale)
    assert scale * float(x.norm(dim=-1).mean()) == pytest.approx(math.sqrt(D_IN))
    torch.testing.assert_close(sae.normalize_inputs(x), (x * scale).float())
    assert sae.estimate_activation_scale_([x[:40], x[40:]]) == pytest.approx(scale)
    with pytest.raises(ValueError, match="expected_average_only_in"):
        BatchTopKSAE(D_IN, D_SAE, K).estimate_activation_scale_([x])
    with pytest.raises(ValueError, match="normalize_activations"):
        BatchTopKSAE(D_IN, D_SAE, K, normalize_activations="unit_norm")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE, JumpReLUSAE, ReLUSAE])
def test_save_and_reload_gives_identical_outputs(cls, mode, tmp_path):
    sae = trained_like(cls, mode)
    x = sink_activations(seed=2)
    path = save_pretrained(sae, tmp_path / "sae")
    again = load_pretrained(path)
    assert again.normalize_activations == mode
    torch.testing.assert_close(again(x), sae(x), rtol=0, atol=0)
    torch.testing.assert_close(again.encode(x), sae.encode(x), rtol=0, atol=0)
    # Only the SAELens files: the expected_average_only_in scale is folded into the weights.
    (path / "sae_fast_state.safetensors").unlink()
    folded = load_pretrained(path)
    assert folded.normalize_activations == ("none" if mode == "expected_average_only_in" else mode)
    torch.testing.assert_close(folded(x), sae(x), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(folded.encode(x), sae.encode(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["dense", "torch", "cpp", "triton"])
def test_every_backend_normalises(backend):
    x = sink_activations(n=64)
    reference = trained_like(BatchTopKSAE, "layer_norm", dense_training=True)
    path = {"dense_training": True} if backend == "dense" else {"backend": backend}
    sae = BatchTopKSAE(D_IN, D_SAE, K, seed=0, normalize_activations="layer_norm", **path)
    sae.load_state_dict(reference.state_dict())
    for module in (reference, sae):
        module.train()
        module.tokens_since_fired[: D_SAE // 4] = module.dead_tokens_threshold  # exercise the aux term
    ours, theirs = sae.training_loss(x), reference.training_loss(x)
    torch.testing.assert_close(ours.loss, theirs.loss)
    ours.loss.backward()
    theirs.loss.backward()
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, dict(reference.named_parameters())[name].grad, atol=1e-5, rtol=1e-4)
    sae.eval()
    reference.eval()
    torch.testing.assert_close(sae(x), reference(x))


def test_trainer_fits_scale_and_b_dec_in_the_normalised_space():
    x = sink_activations(n=64)
    saes = {m: BatchTopKSAE(D_IN, D_SAE, K, seed=0, normalize_activations=m) for m in MODES}
    config = TrainConfig(batch_size=64, total_tokens=64, lr=1e-12, progress=False, log_every=1)
    Trainer(saes, config).train([x])
    assert float(saes["expected_average_only_in"].activation_scale) == pytest.approx(
        math.sqrt(D_IN) / float(x.norm(dim=-1).mean()))
    for mode, sae in saes.items():
        torch.testing.assert_close(sae.b_dec.detach(), sae.normalize_inputs(x).mean(dim=0), atol=1e-5, rtol=1e-5)


def test_evaluate_reports_input_space_nmse_and_normalised_mse():
    sae = trained_like(BatchTopKSAE, "layer_norm")
    x = sink_activations(seed=4)
    result = evaluate(sae, x)
    with torch.no_grad():
        x_hat = sae(x)
        normalized = sae.normalize_inputs(x)
        normalized_hat = sae.reconstruct(x).normalized_x_hat
    nmse = float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert result.nmse == pytest.approx(nmse, rel=1e-5)
    assert result.normalized_mse == pytest.approx(float((normalized - normalized_hat).pow(2).mean()), rel=1e-5)


def test_seeds_mix_in_the_shape():
    small, large = BatchTopKSAE(D_IN, 128, K, seed=0), BatchTopKSAE(D_IN, 256, K, seed=0)
    cosines = torch.nn.functional.normalize(small.W_dec.detach(), dim=1) @ torch.nn.functional.normalize(
        large.W_dec.detach(), dim=1).T
    assert float(cosines.max()) < 0.99  # not the first 128 rows of the larger SAE
    assert torch.equal(BatchTopKSAE(D_IN, 128, K, seed=0).W_dec, small.W_dec)  # still reproducible
    assert not torch.equal(BatchTopKSAE(D_IN, 128, K, seed=1).W_dec, small.W_dec)
    assert not torch.equal(BatchTopKSAE(D_IN, 128, K).W_dec, BatchTopKSAE(D_IN, 128, K).W_dec)


def test_stitching_refuses_saes_that_normalise_differently():
    from sae_fast.stitching import encode_eval_set

    small = trained_like(BatchTopKSAE, "layer_norm")
    large = trained_like(BatchTopKSAE, "none")
    with pytest.raises(ValueError, match="normalise their inputs differently"):
        encode_eval_set(small, large, sink_activations())


def test_paper_recipe():
    from sae_fast.training import PAPER, get_recipe

    assert get_recipe("paper") is PAPER
    config = PAPER.train_config(total_tokens=8192)
    assert (config.lr, config.betas, config.batch_size, config.total_tokens) == (3e-4, (0.9, 0.99), 4096, 8192)
    kwargs = PAPER.sae_kwargs("batchtopk", batch_size=4096)
    assert kwargs == {"normalize_activations": "layer_norm", "dead_tokens_threshold": 5 * 4096, "aux_k": 512,
                      "aux_coefficient": 1 / 32}
    assert "aux_k" not in PAPER.sae_kwargs("jumprelu", batch_size=512)
    sae = BatchTopKSAE(D_IN, D_SAE, K, **PAPER.sae_kwargs("batchtopk", 64))
    assert sae.dead_tokens_threshold == 320 and sae.normalize_activations == "layer_norm"
    with pytest.raises(ValueError, match="known recipes"):
        get_recipe("gpt4")
