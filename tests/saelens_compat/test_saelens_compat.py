"""sae_fast <-> real SAELens 6: each side loads what the other saved and computes the same outputs.

SAELens 6 needs transformer-lens<4, which cannot share the main environment (transformer-lens 4),
so this module is skipped there; ``scripts/check_saelens_compat.sh`` builds a separate venv with
SAELens and runs it.
"""

from __future__ import annotations

import pytest
import torch

sae_lens = pytest.importorskip("sae_lens")

from sae_lens import SAE  # noqa: E402
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig  # noqa: E402
from sae_lens.saes.jumprelu_sae import JumpReLUSAE as LensJumpReLU  # noqa: E402
from sae_lens.saes.matryoshka_batchtopk_sae import (  # noqa: E402
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.jumprelu_sae import JumpReLUSAEConfig  # noqa: E402
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig  # noqa: E402
from sae_lens.saes.topk_sae import TopKSAE as LensTopK  # noqa: E402
from sae_lens.saes.topk_sae import TopKSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig  # noqa: E402

from sae_fast.io import load_pretrained, save_pretrained  # noqa: E402
from sae_fast.sae import BatchTopKSAE, JumpReLUSAE, MatryoshkaBatchTopKSAE, ReLUSAE, TopKSAE  # noqa: E402

D_IN, D_SAE, K = 16, 64, 4
WIDTHS = [8, 24, D_SAE]
TOL = {"rtol": 1e-5, "atol": 1e-5}


def trained_like(cls, normalize_activations="none"):
    kwargs = {BatchTopKSAE: {"k": K}, TopKSAE: {"k": K}, JumpReLUSAE: {}, ReLUSAE: {"l1_coefficient": 0.01},
              MatryoshkaBatchTopKSAE: {"k": K, "matryoshka_widths": WIDTHS}}[cls]
    sae = cls(D_IN, D_SAE, seed=1, normalize_activations=normalize_activations, **kwargs)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.5)
        if cls is JumpReLUSAE:
            sae.threshold.uniform_(0.05, 0.8)
    sae.train()
    # Gives BatchTopK its theta (and expected_average_only_in its scale: ~1/3 for these inputs).
    sae.training_loss(torch.randn(32, D_IN) * 3 + 1)
    return sae.eval()


def randomize(lens_sae):
    with torch.no_grad():
        for name, param in lens_sae.named_parameters():
            param.normal_(0, 0.5 if name != "threshold" else 0.0)
            if name == "threshold":
                param.uniform_(0.05, 0.8)
    return lens_sae


def assert_same(ours, theirs, x):
    with torch.no_grad():
        codes = theirs.encode(x)
        assert torch.equal(ours.encode(x) > 0, codes > 0)
        assert torch.allclose(ours.encode(x), codes, **TOL)
        assert torch.allclose(ours(x), theirs(x), **TOL)


@pytest.mark.parametrize(
    "cls, lens_cls",
    [(BatchTopKSAE, LensJumpReLU), (TopKSAE, LensTopK), (JumpReLUSAE, LensJumpReLU), (ReLUSAE, StandardSAE),
     (MatryoshkaBatchTopKSAE, LensJumpReLU)],
)
def test_saelens_loads_what_sae_fast_saves(cls, lens_cls, tmp_path):
    ours = trained_like(cls)
    save_pretrained(ours, tmp_path / "sae", metadata={"model_name": "gpt2", "hook_name": "blocks.2.hook_resid_pre"})
    theirs = SAE.load_from_disk(str(tmp_path / "sae"))
    assert type(theirs) is lens_cls
    assert theirs.cfg.metadata.hook_name == "blocks.2.hook_resid_pre"
    assert_same(ours, theirs, torch.randn(4, 8, D_IN))


@pytest.mark.parametrize("normalization", ["layer_norm", "expected_average_only_in"])
@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE, JumpReLUSAE, ReLUSAE])
def test_saelens_loads_normalising_sae_fast_saves(cls, normalization, tmp_path):
    ours = trained_like(cls, normalization)
    save_pretrained(ours, tmp_path / "sae")
    theirs = SAE.load_from_disk(str(tmp_path / "sae"))
    # expected_average_only_in is folded into the weights on save, as SAELens's own trainer does.
    assert theirs.cfg.normalize_activations == ("layer_norm" if normalization == "layer_norm" else "none")
    assert_same(ours, theirs, torch.randn(4, 8, D_IN) * 3 + 1)
    assert_same(load_pretrained(tmp_path / "sae"), theirs, torch.randn(4, 8, D_IN) * 3 + 1)


@pytest.mark.parametrize(
    "make_lens, ours_cls",
    [
        (lambda: StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE)), ReLUSAE),
        (lambda: StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False)), ReLUSAE),
        (lambda: LensTopK(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K)), TopKSAE),
        (lambda: LensTopK(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, rescale_acts_by_decoder_norm=True)), TopKSAE),
        (lambda: LensJumpReLU(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False)), JumpReLUSAE),
        (lambda: StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="layer_norm")), ReLUSAE),
        (lambda: LensTopK(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, normalize_activations="layer_norm")), TopKSAE),
        (lambda: LensJumpReLU(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="layer_norm")),
         JumpReLUSAE),
    ],
)
def test_sae_fast_loads_what_saelens_saves(make_lens, ours_cls, tmp_path):
    theirs = randomize(make_lens())
    theirs.save_model(tmp_path / "sae")
    ours = load_pretrained(tmp_path / "sae")
    assert type(ours) is ours_cls
    assert_same(ours, theirs, torch.randn(4, 8, D_IN))


@pytest.mark.parametrize("rescale", [False, True])
def test_saelens_trained_batchtopk_becomes_a_batchtopk_sae(rescale, tmp_path):
    cfg = BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, rescale_acts_by_decoder_norm=rescale)
    trainer_side = randomize(BatchTopKTrainingSAE(cfg))
    trainer_side.topk_threshold = torch.tensor(0.7, dtype=torch.double)
    trainer_side.save_inference_model(tmp_path / "sae")
    ours = load_pretrained(tmp_path / "sae")
    assert type(ours) is BatchTopKSAE and ours.k == K
    assert float(ours.threshold) == pytest.approx(0.7)
    assert_same(ours, SAE.load_from_disk(str(tmp_path / "sae")), torch.randn(4, 8, D_IN))


def test_saelens_trained_topk_inference_save(tmp_path):
    trainer_side = randomize(TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K)))
    trainer_side.save_inference_model(tmp_path / "sae")
    ours = load_pretrained(tmp_path / "sae")
    assert type(ours) is TopKSAE
    assert_same(ours, SAE.load_from_disk(str(tmp_path / "sae")), torch.randn(4, 8, D_IN))


def test_saelens_trained_matryoshka_becomes_a_matryoshka_sae(tmp_path):
    cfg = MatryoshkaBatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, matryoshka_widths=list(WIDTHS))
    trainer_side = randomize(MatryoshkaBatchTopKTrainingSAE(cfg))
    trainer_side.topk_threshold = torch.tensor(0.7, dtype=torch.double)
    trainer_side.save_inference_model(tmp_path / "sae")
    ours = load_pretrained(tmp_path / "sae")
    assert type(ours) is MatryoshkaBatchTopKSAE and ours.k == K and list(ours.matryoshka_widths) == WIDTHS
    assert float(ours.threshold) == pytest.approx(0.7)
    assert_same(ours, SAE.load_from_disk(str(tmp_path / "sae")), torch.randn(4, 8, D_IN))


# ------------------------------------------------------------------ SAELens users' habits: cfg, from_pretrained, add_sae
def test_sae_fast_reads_the_hook_and_model_of_a_saelens_save(tmp_path):
    theirs = randomize(LensTopK(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K)))
    theirs.cfg.metadata.hook_name = "blocks.3.hook_resid_post"
    theirs.cfg.metadata.model_name = "gpt2"
    theirs.cfg.metadata.context_size = 128
    theirs.save_model(tmp_path / "sae")
    ours = TopKSAE.from_pretrained(tmp_path / "sae")
    assert (ours.cfg.hook_name, ours.cfg.model_name, ours.cfg.context_size) == ("blocks.3.hook_resid_post", "gpt2", 128)
    assert (ours.cfg.d_in, ours.cfg.d_sae, ours.cfg.k) == (theirs.cfg.d_in, theirs.cfg.d_sae, theirs.cfg.k)
    with pytest.raises(TypeError, match="holds a TopKSAE"):
        BatchTopKSAE.from_pretrained(tmp_path / "sae")


@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE, JumpReLUSAE, ReLUSAE])
def test_to_saelens_goes_into_hooked_sae_transformer(cls):
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig

    config = HookedTransformerConfig(n_layers=2, d_model=D_IN, n_ctx=8, d_head=4, n_heads=4, d_vocab=50,
                                     act_fn="relu", seed=0)
    model = HookedSAETransformer(config).eval()  # random weights: nothing is downloaded
    hook = "blocks.1.hook_resid_pre"
    ours = trained_like(cls).set_metadata(hook_name=hook, model_name="tiny")
    theirs = ours.to_saelens()
    assert isinstance(theirs, SAE) and theirs.cfg.metadata.hook_name == hook and theirs.cfg.metadata.model_name == "tiny"
    tokens = torch.randint(0, config.d_vocab, (2, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = model(tokens)
        model.add_sae(theirs)
        with_their_sae = model(tokens)
        model.reset_saes()
        with_our_hook = model.run_with_hooks(tokens, fwd_hooks=[(ours.cfg.hook_name, ours.as_hook())])
        model.add_sae(theirs, use_error_term=True)
        with_error_term = model(tokens)
        model.reset_saes()
        with_our_error_term = model.run_with_hooks(tokens, fwd_hooks=[(hook, ours.as_hook(use_error_term=True))])
    assert not torch.allclose(with_their_sae, clean, **TOL)
    assert torch.allclose(with_our_hook, with_their_sae, **TOL)
    assert torch.allclose(with_error_term, clean, **TOL) and torch.allclose(with_our_error_term, clean, **TOL)
