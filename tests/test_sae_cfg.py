"""What SAELens users expect of an SAE: ``sae.cfg``, ``Cls.from_pretrained`` and a TransformerLens hook.

The real-SAELens side (``sae.to_saelens()`` in ``HookedSAETransformer.add_sae``) is tested in
tests/saelens_compat, which needs SAELens's own environment.
"""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch

from sae_fast import BatchTopKSAE, JumpReLUSAE, MatryoshkaBatchTopKSAE, ReLUSAE, SparseAutoencoder, TopKSAE
from sae_fast.io import load_pretrained
from sae_fast.io.gemma_scope import release_metadata
from sae_fast.sae.config import SAEConfig

HOOK = "blocks.1.hook_resid_post"


def trained_batch_topk(d_in=16, d_sae=64, k=4):
    sae = BatchTopKSAE(d_in, d_sae, k, seed=0).train()
    sae.training_loss(torch.randn(64, d_in))  # estimates theta
    return sae.eval()


def test_cfg_describes_every_architecture():
    saes = [BatchTopKSAE(8, 32, 3), TopKSAE(8, 32, 3), JumpReLUSAE(8, 32), ReLUSAE(8, 32, l1_coefficient=0.1),
            MatryoshkaBatchTopKSAE(8, 32, 3, matryoshka_widths=[8, 32], normalize_activations="layer_norm")]
    for sae in saes:
        cfg = sae.cfg
        assert isinstance(cfg, SAEConfig)
        assert (cfg.architecture, cfg.d_in, cfg.d_sae, cfg.dtype, cfg.device) == (sae.architecture, 8, 32, "float32", "cpu")
        assert cfg.k == (3 if hasattr(sae, "k") else None)
        assert cfg.hook_name is None and cfg.metadata.hook_name is None and cfg.model_name is None
        assert "architecture" not in cfg.hyperparameters and "dtype" not in cfg.hyperparameters
        json.dumps(cfg.to_dict())
    assert saes[3].cfg.hyperparameters["l1_coefficient"] == 0.1
    assert saes[4].cfg.matryoshka_widths == (8, 32) and saes[4].cfg.normalize_activations == "layer_norm"
    # A view of the module: it follows the weights.
    assert saes[0].to(torch.float64).cfg.dtype == "float64"


def test_cfg_is_read_only_and_says_how_to_change_it():
    sae = TopKSAE(8, 32, 3).set_metadata(hook_name=HOOK)
    with pytest.raises(AttributeError, match="set_metadata"):
        sae.cfg = None
    with pytest.raises(AttributeError, match="read-only"):
        sae.cfg.k = 5
    with pytest.raises(AttributeError, match="read-only"):
        sae.cfg.metadata.hook_name = "elsewhere"
    with pytest.raises(TypeError):
        sae.cfg.hyperparameters["aux_k"] = 1
    sae.cfg.to_dict()["metadata"]["hook_name"] = "elsewhere"  # a copy
    assert sae.cfg.hook_name == HOOK and sae.k == 3


def test_set_metadata_checks_types_and_none_removes():
    sae = TopKSAE(8, 32, 3)
    assert sae.set_metadata(hook_name=HOOK, model_name="gpt2", context_size=128, notes={"run": 1}) is sae
    meta = sae.cfg.metadata
    assert (meta.hook_name, meta["model_name"], sae.cfg.context_size, meta.notes) == (HOOK, "gpt2", 128, {"run": 1})
    with pytest.raises(AttributeError, match="no 'nope'"):
        meta.nope
    with pytest.raises(TypeError, match="context_size"):
        sae.set_metadata(context_size="128")
    with pytest.raises(TypeError, match="JSON"):
        sae.set_metadata(tensor=torch.zeros(1))
    sae.set_metadata(notes=None)
    assert "notes" not in sae.cfg.metadata
    assert copy.deepcopy(sae).cfg.hook_name == HOOK
    assert pickle.loads(pickle.dumps(sae.cfg.metadata)) == sae.cfg.metadata


def test_cfg_survives_save_and_load(tmp_path):
    sae = trained_batch_topk().set_metadata(hook_name=HOOK, model_name="tiny", context_size=32)
    sae.save_pretrained(tmp_path / "sae", metadata={"dataset_path": "offline-prose", "model_name": "tiny-2"})
    # The caller's metadata wins; the SAE itself is not changed by saving.
    assert sae.cfg.model_name == "tiny"
    loaded = BatchTopKSAE.from_pretrained(tmp_path / "sae")
    assert loaded.cfg.to_dict() == {**sae.cfg.to_dict(), "metadata": {
        "hook_name": HOOK, "model_name": "tiny-2", "context_size": 32, "dataset_path": "offline-prose"}}
    saved = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert saved["metadata"]["hook_name"] == HOOK  # where SAELens 6 reads it
    # File-format entries are not facts about the activations: they are rewritten on each save.
    assert "sae_lens_version" not in loaded.cfg.metadata and "training_architecture" not in loaded.cfg.metadata


def test_cfg_from_older_saelens_configs(tmp_path):
    sae = TopKSAE(8, 32, 3, seed=0)
    sae.save_pretrained(tmp_path / "sae")
    cfg_path = tmp_path / "sae" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["sae_fast"], cfg["metadata"]  # a pre-6 SAELens config keeps the facts at the top level
    cfg.update(hook_point="blocks.3.hook_resid_pre", model_name="gpt2", context_size="bad")
    cfg_path.write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="context_size"):
        loaded = load_pretrained(tmp_path / "sae")
    assert (loaded.cfg.hook_name, loaded.cfg.model_name, loaded.cfg.context_size) == ("blocks.3.hook_resid_pre", "gpt2", None)


def test_from_pretrained_checks_the_class(tmp_path):
    trained_batch_topk().save_pretrained(tmp_path / "sae")
    assert type(SparseAutoencoder.from_pretrained(tmp_path / "sae")) is BatchTopKSAE
    assert BatchTopKSAE.from_pretrained(tmp_path / "sae", backend="torch").backend == "torch"
    with pytest.raises(TypeError, match="holds a BatchTopKSAE.*not a TopKSAE"):
        TopKSAE.from_pretrained(tmp_path / "sae")
    with pytest.raises(FileNotFoundError):
        BatchTopKSAE.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("models--google--gemma-scope-2b-pt-res/snapshots/abc/layer_12/width_16k/average_l0_41",
         {"model_name": "gemma-2-2b", "hook_name": "blocks.12.hook_resid_post"}),
        ("gemma-scope-9b-it-mlp/layer_3/width_131k/average_l0_9",
         {"model_name": "gemma-2-9b-it", "hook_name": "blocks.3.hook_mlp_out"}),
        ("gemma-scope-2b-pt-att/layer_0/width_16k/canonical", {"model_name": "gemma-2-2b", "hook_name": "blocks.0.attn.hook_z"}),
        ("my_saes/layer_12", {}),  # no release folder: no guess
    ],
)
def test_gemma_scope_metadata_from_the_release_layout(tmp_path, relative, expected):
    folder = tmp_path / relative
    folder.mkdir(parents=True)
    d_in, d_sae = 4, 8
    arrays = {"W_enc": np.ones((d_in, d_sae)), "W_dec": np.ones((d_sae, d_in)), "b_enc": np.zeros(d_sae),
              "b_dec": np.zeros(d_in), "threshold": np.full(d_sae, 0.1)}
    np.savez(folder / "params.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})
    assert release_metadata(folder / "params.npz") == expected
    assert load_pretrained(folder).cfg.metadata.to_dict() == expected


# ------------------------------------------------------------------ TransformerLens hooks
@pytest.fixture(scope="module")
def model():
    from sae_fast.activations import tiny_random_model

    return tiny_random_model(d_model=32, n_layers=2, seed=0)


def test_as_hook_splices_the_sae_into_a_transformer_lens_model(model):
    sae = trained_batch_topk(d_in=32, d_sae=128).set_metadata(hook_name=HOOK).train()  # the hook runs in eval mode
    tokens = model.tokenizer("the hook replaces activations", return_tensors="pt")["input_ids"]
    seen = {}

    def record(name):
        def hook(activation, hook):
            seen[name] = activation.detach().clone()
        return hook

    with torch.no_grad():
        clean = model(tokens)
        spliced = model.run_with_hooks(tokens, fwd_hooks=[
            (sae.cfg.hook_name, record("in")), (sae.cfg.hook_name, sae.as_hook()), (sae.cfg.hook_name, record("out"))])
        kept = model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.hook_name, sae.as_hook(use_error_term=True))])
    assert sae.training  # its mode is given back
    sae.eval()
    assert torch.equal(seen["out"], sae(seen["in"]))
    assert not torch.allclose(spliced, clean)
    torch.testing.assert_close(kept, clean, rtol=1e-5, atol=1e-5)  # the error term restores the clean run


def test_as_hook_gradients_and_per_head_activations():
    sae = TopKSAE(12, 48, 4, seed=1)
    x = torch.randn(2, 5, 12, requires_grad=True)
    sae.as_hook(use_error_term=True)(x).sum().backward()
    assert sae.W_dec.grad is not None  # gradients reach the latents
    heads = torch.randn(2, 5, 3, 4)  # hook_z: [batch, pos, n_heads, d_head] with n_heads * d_head = d_in
    out = sae.as_hook()(heads, None)
    assert out.shape == heads.shape and torch.equal(out.flatten(-2), sae(heads.flatten(-2)))
    with pytest.raises(ValueError, match="hook the point the SAE was trained on"):
        sae.as_hook()(torch.randn(2, 5, 7), None)
