"""Saving and loading stay honest: ordinary permissions, no pinned backend, contradictory files refused."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae_fast import BatchTopKSAE, JumpReLUSAE, TopKSAE, load_pretrained, save_pretrained
from sae_fast.io.atomic import atomic_write_text
from sae_fast.training import ShuffledBatches, TrainConfig, Trainer, load_checkpoint, save_checkpoint


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def trained_batch_topk(**kwargs) -> BatchTopKSAE:
    sae = BatchTopKSAE(8, 16, 2, seed=0, **kwargs)
    sae.training_loss(torch.randn(32, 8))  # estimates theta
    return sae.eval()


def edit_json(path, change) -> None:
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


# ------------------------------------------------------------------------------------ permissions
def test_saves_get_the_permissions_the_umask_gives(tmp_path, umask_022):
    folder = save_pretrained(trained_batch_topk(), tmp_path / "sae")
    assert mode(folder) == 0o755
    assert {f.name: mode(f) for f in folder.iterdir()} == dict.fromkeys(
        ["cfg.json", "sae_weights.safetensors", "sae_fast_state.safetensors"], 0o644
    )
    save_pretrained(trained_batch_topk(), folder)  # replacing a save keeps them too
    assert mode(folder) == 0o755
    atomic_write_text(tmp_path / "note.txt", "x")
    assert mode(tmp_path / "note.txt") == 0o644

    os.umask(0o077)  # a user who wants private files still gets them
    private = save_pretrained(trained_batch_topk(), tmp_path / "private")
    assert mode(private) == 0o700 and mode(private / "cfg.json") == 0o600


# ------------------------------------------------------------------------------------ backend
def test_backend_is_chosen_at_load_time_not_saved(tmp_path):
    sae = trained_batch_topk(backend="cpp")
    assert "backend" not in sae.config_dict()
    folder = save_pretrained(sae, tmp_path / "sae")
    assert "backend" not in (folder / "cfg.json").read_text()
    assert load_pretrained(folder).backend == "auto"
    loaded = load_pretrained(folder, backend="torch")
    assert loaded.backend == "torch"
    x = torch.randn(4, 8)
    assert torch.allclose(loaded(x), sae(x), atol=1e-6)
    with pytest.raises(ValueError, match="backend must be one of"):
        load_pretrained(folder, backend="cuda")


def test_dense_backend_is_a_deprecated_alias_of_the_dense_training_flag(tmp_path):
    with pytest.warns(DeprecationWarning, match="dense_training=True"):
        sae = BatchTopKSAE(8, 16, 2, seed=0, backend="dense")
    assert sae.backend == "torch" and sae.dense_training
    folder = save_pretrained(trained_batch_topk(), tmp_path / "sae")
    with pytest.warns(DeprecationWarning):
        loaded = load_pretrained(folder, backend="dense")
    assert loaded.backend == "torch" and loaded.dense_training


def test_old_saves_that_hold_a_backend_still_load(tmp_path):
    folder = save_pretrained(trained_batch_topk(), tmp_path / "sae")
    edit_json(folder / "cfg.json", lambda cfg: cfg["sae_fast"]["config"].update(backend="cpp"))
    assert load_pretrained(folder).backend == "auto"
    assert load_pretrained(folder, backend="torch").backend == "torch"


def test_resume_with_another_backend_and_from_an_old_checkpoint(tmp_path):
    def trainer(backend, resume=False):
        saes = {"btk": BatchTopKSAE(8, 16, 2, seed=0, backend=backend)}
        config = TrainConfig(batch_size=32, total_tokens=None, checkpoint_dir=str(tmp_path / "ckpt"),
                             checkpoint_every=1, progress=False, resume=resume)
        return Trainer(saes, config)

    trainer("cpp").train(ShuffledBatches(torch.randn(64, 8), 32, epochs=1))
    path = tmp_path / "ckpt" / "checkpoint.pt"
    payload = load_checkpoint(path)
    assert "backend" not in payload["saes"]["btk"]["config"]
    resumed = trainer("torch", resume=True)
    resumed.train(ShuffledBatches(torch.randn(64, 8), 32, epochs=1))
    assert resumed.step == 2 and resumed.saes["btk"].backend == "torch"  # restored, not restarted

    payload["saes"]["btk"]["config"]["backend"] = "cpp"  # as checkpoints written before the fix
    del payload["saes"]["btk"]["config"]["normalize_activations"]  # and before input normalisation
    save_checkpoint(path, payload)
    trainer("torch", resume=True).load_checkpoint(path)


# ------------------------------------------------------------------------------------ contradictions
def test_top_level_sizes_that_contradict_the_sae_fast_entry_are_refused(tmp_path):
    folder = save_pretrained(trained_batch_topk(), tmp_path / "sae")
    edit_json(folder / "cfg.json", lambda cfg: cfg.update(d_sae=32))
    with pytest.raises(ValueError, match=r"contradicts itself: top-level d_sae=32 \(the 'sae_fast' entry implies 16\)"):
        load_pretrained(folder)
    edit_json(folder / "cfg.json", lambda cfg: cfg.update(d_sae=16, architecture="topk"))
    with pytest.raises(ValueError, match="architecture='topk'"):
        load_pretrained(folder)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    folder = save_pretrained(TopKSAE(8, 16, 2, seed=0), tmp_path / "sae")
    weights = load_file(str(folder / "sae_weights.safetensors"))
    weights["W_dec"][3, 1] = bad
    save_file(weights, str(folder / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="'W_dec' .* holds NaN or Inf"):
        load_pretrained(folder)


def test_weights_that_overflow_the_requested_dtype_are_refused(tmp_path):
    sae = TopKSAE(8, 16, 2, seed=0)
    with torch.no_grad():
        sae.b_dec[0] = 1e6  # finite in float32, beyond float16's 65504
    folder = save_pretrained(sae, tmp_path / "sae")
    with pytest.raises(ValueError, match="'b_dec' .* too large for torch.float16; load the SAE with a wider dtype"):
        load_pretrained(folder, dtype=torch.float16)


def test_per_latent_thresholds_are_not_loaded_as_batch_topk(tmp_path):
    folder = save_pretrained(trained_batch_topk(), tmp_path / "sae")
    weights = load_file(str(folder / "sae_weights.safetensors"))
    jumprelu_thresholds = torch.rand(16) + 0.1  # e.g. the file was fine-tuned as a JumpReLU in SAELens
    save_file({**weights, "threshold": jumprelu_thresholds}, str(folder / "sae_weights.safetensors"))
    for with_state in (True, False):
        with pytest.raises(ValueError, match="per-latent thresholds .* Remove the 'sae_fast' entry"):
            load_pretrained(folder)
        (folder / "sae_fast_state.safetensors").unlink(missing_ok=True)

    edit_json(folder / "cfg.json", lambda cfg: cfg.pop("sae_fast"))  # the fix the error suggests
    loaded = load_pretrained(folder)
    assert isinstance(loaded, JumpReLUSAE) and torch.equal(loaded.threshold, jumprelu_thresholds)


def test_a_bfloat16_batch_topk_save_still_loads(tmp_path):
    sae = trained_batch_topk().to(torch.bfloat16)  # its theta is rounded to bf16 in the weights file
    loaded = load_pretrained(save_pretrained(sae, tmp_path / "sae"))
    assert isinstance(loaded, BatchTopKSAE) and torch.equal(loaded.threshold, sae.threshold)


# ------------------------------------------------------------------------------------ the method
def test_the_save_pretrained_method_writes_what_the_function_does(tmp_path):
    sae = trained_batch_topk()
    by_method = sae.save_pretrained(tmp_path / "method", metadata={"hook_name": "h"})
    by_function = save_pretrained(sae, tmp_path / "function", metadata={"hook_name": "h"})
    assert sorted(f.name for f in by_method.iterdir()) == sorted(f.name for f in by_function.iterdir())
    loaded = load_pretrained(by_method)
    assert isinstance(loaded, BatchTopKSAE) and torch.equal(loaded.threshold, sae.threshold)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sae.state_dict().items())
