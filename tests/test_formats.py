"""File formats: sae_fast save/load round trips, and loading SAELens, sparsify and Gemma Scope files.

Every foreign fixture is written here from known random tensors with that library's exact key
names and layouts, and the loaded SAE is compared with a direct computation of that library's
formula (transcribed from its source), not with sae_fast's own maths.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import sae_fast.io.native as native_module
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.sae import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE

D_IN, D_SAE, K = 12, 48, 4
TOL = {"rtol": 1e-5, "atol": 1e-5}


def make_trained_like(cls, d_in=D_IN, d_sae=D_SAE, data=None, **extra):
    """An SAE with every parameter and buffer away from its initial value (``data``: its training batch)."""
    kwargs = {BatchTopKSAE: {"k": K, "threshold_window": 3}, TopKSAE: {"k": K}, JumpReLUSAE: {"l0_coefficient": 0.01},
              ReLUSAE: {"l1_coefficient": 0.02}}[cls]
    sae = cls(d_in, d_sae, seed=3, **kwargs, **extra)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.5)
        if cls is JumpReLUSAE:
            sae.threshold.uniform_(0.05, 0.8)
    sae.train()
    for _ in range(2):  # estimates BatchTopK's theta and moves every dead-latent counter
        sae.training_loss(torch.randn(16, d_in) if data is None else data)
    return sae.eval()


def inputs():
    return torch.randn(5, 6, D_IN)


def rand(*shape):
    return torch.randn(*shape)


def write_safetensors(path, tensors):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(path))


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def assert_same_outputs(sae, x, codes, x_hat):
    assert torch.allclose(sae.encode(x), codes, **TOL)
    assert torch.equal(sae.encode(x) > 0, codes > 0)  # the same latents are active
    assert torch.allclose(sae(x), x_hat, **TOL)


# ---------------------------------------------------------------------------------------- references
def saelens_reference(cfg, t, x):
    """SAELens 6 inference: process_sae_in, encode (per architecture), decode."""
    arch = cfg["architecture"]
    sae_in = x - t["b_dec"] * cfg.get("apply_b_dec_to_input", True)
    pre = sae_in @ t["W_enc"] + t["b_enc"]
    norms = t["W_dec"].norm(dim=-1)
    rescale = cfg.get("rescale_acts_by_decoder_norm", False) and arch in ("topk", "batchtopk")
    if rescale:
        pre = pre * norms
    if arch == "standard":
        f = pre.relu()
    elif arch == "topk":
        values, indices = pre.topk(cfg["k"], dim=-1)
        f = torch.zeros_like(pre).scatter(-1, indices, values.relu())
    elif arch == "batchtopk":  # a training checkpoint used for inference: JumpReLU at topk_threshold
        f = pre.relu() * (pre > t["topk_threshold"])
    else:
        threshold = t["threshold"] if "threshold" in t else t["log_threshold"].exp()
        f = pre.relu() * (pre > threshold)
    decoded = (f / norms if rescale else f) @ t["W_dec"] + t["b_dec"]
    return f, decoded


def sparsify_reference(cfg, t, x):
    """sparsify SparseCoder: encode (x - b_dec unless transcode), top-k of relu(linear), decode."""
    x_in = x if cfg.get("transcode") else x - t["b_dec"]
    pre = torch.relu(x_in @ t["encoder.weight"].T + t["encoder.bias"])
    values, indices = pre.topk(cfg["k"], dim=-1, sorted=False)
    f = torch.zeros_like(pre).scatter(-1, indices, values)
    return f, f @ t["W_dec"] + t["b_dec"]


def gemma_scope_reference(p, x):
    """Gemma Scope JumpReLU: no b_dec subtraction on the input."""
    pre = x @ p["W_enc"] + p["b_enc"]
    f = pre.relu() * (pre > p["threshold"])
    return f, f @ p["W_dec"] + p["b_dec"]


def saelens_tensors(arch):
    t = {"W_enc": rand(D_IN, D_SAE), "W_dec": rand(D_SAE, D_IN), "b_enc": rand(D_SAE) * 0.3, "b_dec": rand(D_IN)}
    if arch == "jumprelu":
        t["threshold"] = torch.rand(D_SAE) * 2
    if arch == "batchtopk":
        t["topk_threshold"] = torch.tensor(1.5, dtype=torch.float64)
    return t


def saelens_cfg(arch, **extra):
    cfg = {"architecture": arch, "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"sae_lens_version": "6.5.0", "model_name": "gpt2", "hook_name": "blocks.3.hook_resid_post"}}
    if arch in ("topk", "batchtopk"):
        cfg["k"] = K
    cfg.update(extra)
    return cfg


def write_saelens(directory, cfg, tensors):
    write_json(directory / "cfg.json", cfg)
    write_safetensors(directory / "sae_weights.safetensors", tensors)
    return directory


# ---------------------------------------------------------------------------------------- our format
ALL = [BatchTopKSAE, TopKSAE, JumpReLUSAE, ReLUSAE]


@pytest.mark.parametrize("cls", ALL)
def test_round_trip_restores_the_module_exactly(cls, tmp_path):
    sae = make_trained_like(cls)
    save_pretrained(sae, tmp_path / "sae")
    loaded = load_pretrained(tmp_path / "sae")
    assert type(loaded) is cls and not loaded.training
    assert loaded.config_dict() == sae.config_dict()
    original, restored = sae.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert restored[name].dtype == original[name].dtype, name
        assert torch.equal(restored[name], original[name]), name
    x = inputs()
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert torch.equal(loaded(x), sae(x))


def test_batch_topk_theta_and_its_running_state_survive(tmp_path):
    sae = make_trained_like(BatchTopKSAE)
    assert float(sae.threshold) > 0 and int(sae.threshold_num_batches) == 2
    sae.freeze_threshold()
    loaded = load_pretrained(save_pretrained(sae, tmp_path / "sae"))
    assert float(loaded.threshold) == float(sae.threshold)
    assert int(loaded.threshold_num_batches) == 2 and bool(loaded.threshold_frozen)
    # Eval mode is the JumpReLU at theta: check against the formula, not against the module.
    x = inputs()
    pre = torch.relu((x - loaded.b_dec) @ loaded.W_enc + loaded.b_enc)
    assert torch.allclose(loaded.encode(x), pre * (pre > loaded.threshold), **TOL)


def test_round_trip_to_another_dtype_and_from_a_file_path(tmp_path):
    sae = make_trained_like(TopKSAE)
    save_pretrained(sae, tmp_path / "sae")
    loaded = load_pretrained(tmp_path / "sae" / "cfg.json", dtype="float64", device="cpu")
    assert loaded.dtype == torch.float64 and loaded.config_dict()["dtype"] == "float64"
    x = inputs()
    assert torch.allclose(loaded(x.double()).float(), sae(x), **TOL)


@pytest.mark.parametrize("cls", ALL)
def test_saved_folder_is_what_saelens_6_loads(cls, tmp_path):
    """The files alone, read with SAELens' rules and formula, reproduce the module's outputs."""
    sae = make_trained_like(cls)
    save_pretrained(sae, tmp_path / "sae", metadata={"model_name": "gpt2", "hook_name": "blocks.0.hook_resid_pre"})
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    tensors = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))
    expected_arch = {BatchTopKSAE: "jumprelu", TopKSAE: "topk", JumpReLUSAE: "jumprelu", ReLUSAE: "standard"}[cls]
    assert cfg["architecture"] == expected_arch
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"], cfg["apply_b_dec_to_input"]) == (D_IN, D_SAE, "float32", True)
    assert cfg["normalize_activations"] == "none" and cfg["reshape_activations"] == "none"
    assert cfg["metadata"]["model_name"] == "gpt2" and cfg["metadata"]["sae_lens_version"] >= "6"
    names = {"W_enc", "W_dec", "b_enc", "b_dec"} | ({"threshold"} if expected_arch == "jumprelu" else set())
    assert set(tensors) == names  # SAELens' load_state_dict is strict
    assert tensors["W_enc"].shape == (D_IN, D_SAE) and tensors["W_dec"].shape == (D_SAE, D_IN)
    if cls is TopKSAE:
        assert cfg["k"] == K and cfg["rescale_acts_by_decoder_norm"] is False
    if cls is BatchTopKSAE:
        assert torch.all(tensors["threshold"] == float(sae.threshold))
        assert cfg["metadata"]["training_architecture"] == "batchtopk"
    x = inputs()
    codes, x_hat = saelens_reference(cfg, tensors, x)
    assert_same_outputs(sae, x, codes, x_hat)


def test_state_file_missing_falls_back_to_the_saelens_files(tmp_path):
    sae = make_trained_like(BatchTopKSAE)
    save_pretrained(sae, tmp_path / "sae")
    (tmp_path / "sae" / "sae_fast_state.safetensors").unlink()
    loaded = load_pretrained(tmp_path / "sae")
    assert type(loaded) is BatchTopKSAE and float(loaded.threshold) == float(sae.threshold)
    x = inputs()
    assert torch.equal(loaded.encode(x), sae.encode(x))


# ---------------------------------------------------------------------------------------- atomic saves
def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_failed_save_leaves_the_previous_save_intact(tmp_path, monkeypatch):
    first = make_trained_like(TopKSAE)
    save_pretrained(first, tmp_path / "sae")
    before = {p.name: p.read_bytes() for p in (tmp_path / "sae").iterdir()}

    calls = []

    def failing_save_file(tensors, filename, *args, **kwargs):
        calls.append(filename)
        with open(filename, "wb") as handle:  # a partly written file, then the crash
            handle.write(b"\x00" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(native_module, "save_file", failing_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(make_trained_like(JumpReLUSAE), tmp_path / "sae")
    assert calls and not str(calls[0]).startswith(str(tmp_path / "sae"))  # never wrote into the target
    assert {p.name: p.read_bytes() for p in (tmp_path / "sae").iterdir()} == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    x = inputs()
    assert torch.equal(load_pretrained(tmp_path / "sae")(x), first(x))


def test_second_save_replaces_the_first_without_leftovers(tmp_path):
    save_pretrained(make_trained_like(TopKSAE), tmp_path / "sae")
    second = make_trained_like(ReLUSAE)
    save_pretrained(second, tmp_path / "sae")
    loaded = load_pretrained(tmp_path / "sae")
    assert type(loaded) is ReLUSAE and leftovers(tmp_path) == []
    x = inputs()
    assert torch.equal(loaded(x), second(x))


def test_save_to_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sae = make_trained_like(JumpReLUSAE)
    save_pretrained(sae, "run")
    save_pretrained(sae, "run")  # replacing works for relative paths too
    x = inputs()
    assert torch.equal(load_pretrained("run")(x), sae(x)) and leftovers(tmp_path) == []


def test_save_refuses_to_clobber_unrelated_files(tmp_path):
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        save_pretrained(make_trained_like(TopKSAE), tmp_path / "sae")
    assert (tmp_path / "sae" / "notes.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_save_validates_its_arguments(tmp_path):
    with pytest.raises(TypeError, match="sae_fast SAE"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
    with pytest.raises(ValueError, match="JSON-able"):
        save_pretrained(make_trained_like(TopKSAE), tmp_path / "x", metadata={"tensor": torch.zeros(1)})
    assert not (tmp_path / "x").exists() and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------- SAELens
@pytest.mark.parametrize(
    "arch, extra, expected_cls",
    [
        ("standard", {}, ReLUSAE),
        ("topk", {}, TopKSAE),
        ("topk", {"rescale_acts_by_decoder_norm": True}, TopKSAE),
        ("jumprelu", {}, JumpReLUSAE),
        ("jumprelu", {"apply_b_dec_to_input": False}, JumpReLUSAE),
        ("standard", {"apply_b_dec_to_input": False}, ReLUSAE),
        ("batchtopk", {"rescale_acts_by_decoder_norm": True, "k": float(K)}, BatchTopKSAE),
    ],
)
def test_loads_saelens_folders_with_identical_outputs(arch, extra, expected_cls, tmp_path):
    cfg, tensors = saelens_cfg(arch, **extra), saelens_tensors(arch)
    loaded = load_pretrained(write_saelens(tmp_path / "sae", cfg, tensors))
    assert type(loaded) is expected_cls
    x = inputs()
    assert_same_outputs(loaded, x, *saelens_reference(cfg, tensors, x))


def test_saelens_batchtopk_saved_as_jumprelu_becomes_batchtopk(tmp_path):
    """SAELens saves a trained BatchTopK as jumprelu + training_architecture metadata."""
    tensors = saelens_tensors("jumprelu")
    tensors["threshold"] = torch.full((D_SAE,), 1.25)
    cfg = saelens_cfg("jumprelu")
    cfg["metadata"].update(training_architecture="batchtopk", training_architecture_details={"k": 5.0})
    loaded = load_pretrained(write_saelens(tmp_path / "sae", cfg, tensors))
    assert type(loaded) is BatchTopKSAE and loaded.k == 5 and float(loaded.threshold) == 1.25
    assert bool(loaded.threshold_frozen)
    x = inputs()
    assert_same_outputs(loaded, x, *saelens_reference(cfg, tensors, x))


def test_saelens_batchtopk_with_fractional_k_stays_a_jumprelu(tmp_path):
    tensors = saelens_tensors("jumprelu")
    tensors["threshold"] = torch.full((D_SAE,), 0.9)
    cfg = saelens_cfg("jumprelu")
    cfg["metadata"].update(training_architecture="batchtopk", training_architecture_details={"k": 4.5})
    loaded = load_pretrained(write_saelens(tmp_path / "sae", cfg, tensors))
    assert type(loaded) is JumpReLUSAE
    x = inputs()
    assert_same_outputs(loaded, x, *saelens_reference(cfg, tensors, x))


def test_loads_old_saelens_files(tmp_path):
    """Pre-6.0 configs (no architecture; topk spelled in activation_fn_str) and log_threshold checkpoints."""
    tensors = saelens_tensors("topk")
    old_cfg = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "hook_point": "blocks.0.hook_resid_pre",
               "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K}, "apply_b_dec_to_input": True}
    loaded = load_pretrained(write_saelens(tmp_path / "old", old_cfg, tensors))
    x = inputs()
    assert type(loaded) is TopKSAE and loaded.k == K
    assert_same_outputs(loaded, x, *saelens_reference({**old_cfg, "architecture": "topk", "k": K}, tensors, x))

    tensors = saelens_tensors("standard")
    tensors["log_threshold"] = torch.randn(D_SAE) * 0.3
    cfg = saelens_cfg("jumprelu")
    loaded = load_pretrained(write_saelens(tmp_path / "log", cfg, tensors) / "sae_weights.safetensors")
    assert type(loaded) is JumpReLUSAE
    assert_same_outputs(loaded, x, *saelens_reference(cfg, tensors, x))


def test_saelens_config_dtype_is_honoured(tmp_path):
    tensors = saelens_tensors("standard")
    loaded = load_pretrained(write_saelens(tmp_path / "sae", saelens_cfg("standard", dtype="float64"), tensors))
    assert loaded.dtype == torch.float64


# ---------------------------------------------------------------------------------------- sparsify
def sparsify_files(directory, *, transcode=False, use_num_latents=True):
    cfg = {"activation": "topk", "expansion_factor": D_SAE // D_IN, "normalize_decoder": True,
           "num_latents": D_SAE if use_num_latents else 0, "k": K, "multi_topk": False, "skip_connection": False,
           "transcode": transcode, "d_in": D_IN}
    tensors = {"encoder.weight": rand(D_SAE, D_IN), "encoder.bias": rand(D_SAE) * 0.3, "W_dec": rand(D_SAE, D_IN),
               "b_dec": rand(D_IN)}
    write_json(directory / "cfg.json", cfg)
    write_safetensors(directory / "sae.safetensors", tensors)
    return cfg, tensors


@pytest.mark.parametrize("transcode", [False, True])
@pytest.mark.parametrize("use_num_latents", [True, False])
def test_loads_sparsify_folders_with_identical_outputs(transcode, use_num_latents, tmp_path):
    cfg, tensors = sparsify_files(tmp_path / "layers.3", transcode=transcode, use_num_latents=use_num_latents)
    x = inputs()
    expected = sparsify_reference(cfg, tensors, x)
    for path in (tmp_path / "layers.3", tmp_path / "layers.3" / "sae.safetensors"):
        loaded = load_pretrained(path)
        assert type(loaded) is TopKSAE and loaded.k == K and loaded.d_sae == D_SAE
        assert_same_outputs(loaded, x, *expected)


def test_sparsify_parent_folder_asks_for_a_hookpoint(tmp_path):
    sparsify_files(tmp_path / "layers.0")
    sparsify_files(tmp_path / "layers.1")
    with pytest.raises(ValueError, match=r"layers\.0"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"activation": "groupmax"}, "groupmax"),
        ({"skip_connection": True}, "skip_connection"),
        ({"k": D_SAE + 1}, "exceeds"),
    ],
)
def test_sparsify_unsupported_options_are_refused(change, match, tmp_path):
    cfg, _ = sparsify_files(tmp_path / "sae")
    write_json(tmp_path / "sae" / "cfg.json", {**cfg, **change})
    with pytest.raises(ValueError, match=match):
        load_pretrained(tmp_path / "sae")


# ---------------------------------------------------------------------------------------- Gemma Scope
def gemma_scope_params():
    return {"W_enc": rand(D_IN, D_SAE), "W_dec": rand(D_SAE, D_IN), "b_enc": rand(D_SAE) * 0.3,
            "b_dec": rand(D_IN), "threshold": torch.rand(D_SAE)}


def test_loads_gemma_scope_params_with_identical_outputs(tmp_path):
    params = gemma_scope_params()
    (tmp_path / "layer_5").mkdir()
    np.savez(tmp_path / "layer_5" / "params.npz", **{k: v.numpy() for k, v in params.items()})
    x = inputs()
    expected = gemma_scope_reference(params, x)
    for path in (tmp_path / "layer_5", tmp_path / "layer_5" / "params.npz"):
        loaded = load_pretrained(path)
        assert type(loaded) is JumpReLUSAE
        assert_same_outputs(loaded, x, *expected)


def test_gemma_scope_lowercase_matrix_names(tmp_path):
    params = gemma_scope_params()
    renamed = {("w_" + k[2:] if k.startswith("W_") else k): v.numpy() for k, v in params.items()}
    np.savez(tmp_path / "weights.npz", **renamed)
    x = inputs()
    assert_same_outputs(load_pretrained(tmp_path / "weights.npz"), x, *gemma_scope_reference(params, x))


# ---------------------------------------------------------------------------------------- errors
def test_missing_paths_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors"):
        load_pretrained(tmp_path / "empty")
    write_json(tmp_path / "cfg_only" / "cfg.json", saelens_cfg("standard"))
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_pretrained(tmp_path / "cfg_only")
    (tmp_path / "other.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a file of a known SAE format"):
        load_pretrained(tmp_path / "other.bin")


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    path = save_pretrained(make_trained_like(TopKSAE), tmp_path / "sae")
    weights = path / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors.*truncated or corrupt"):
        load_pretrained(path)

    path = save_pretrained(make_trained_like(TopKSAE), tmp_path / "sae2")
    (path / "cfg.json").write_text('{"architecture": "topk", "d_in": ')
    with pytest.raises(ValueError, match=r"cfg\.json is not valid JSON"):
        load_pretrained(path)

    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"bad\.npz.*truncated or corrupt"):
        load_pretrained(tmp_path / "bad.npz")


def test_missing_key_is_named(tmp_path):
    tensors = saelens_tensors("topk")
    del tensors["b_dec"]
    write_saelens(tmp_path / "sae", saelens_cfg("topk"), tensors)
    with pytest.raises(ValueError, match=r"missing tensor\(s\) \['b_dec'\]"):
        load_pretrained(tmp_path / "sae")

    params = {k: v.numpy() for k, v in gemma_scope_params().items() if k != "threshold"}
    np.savez(tmp_path / "params.npz", **params)
    with pytest.raises(ValueError, match="threshold"):
        load_pretrained(tmp_path / "params.npz")


def test_misshapen_tensor_reports_expected_and_found_shapes(tmp_path):
    tensors = saelens_tensors("jumprelu")
    tensors["W_enc"] = rand(D_IN + 1, D_SAE)
    write_saelens(tmp_path / "sae", saelens_cfg("jumprelu"), tensors)
    with pytest.raises(ValueError, match=rf"'W_enc'.*shape \({D_IN + 1}, {D_SAE}\), expected \({D_IN}, {D_SAE}\)"):
        load_pretrained(tmp_path / "sae")

    cfg, tensors = sparsify_files(tmp_path / "sp")
    tensors["W_dec"] = rand(D_IN, D_SAE)  # transposed by mistake
    write_safetensors(tmp_path / "sp" / "sae.safetensors", tensors)
    with pytest.raises(ValueError, match=rf"'W_dec'.*expected \({D_SAE}, {D_IN}\)"):
        load_pretrained(tmp_path / "sp")

    path = save_pretrained(make_trained_like(JumpReLUSAE), tmp_path / "ours")
    state = load_file(str(path / "sae_weights.safetensors"))
    state["threshold"] = torch.ones(D_SAE - 1)
    save_file(state, str(path / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match=rf"'threshold'.*\({D_SAE - 1},\), expected \({D_SAE},\)"):
        load_pretrained(path)


def test_unknown_architecture_and_unsupported_preprocessing(tmp_path):
    write_saelens(tmp_path / "gated", saelens_cfg("gated"), saelens_tensors("standard"))
    with pytest.raises(ValueError, match=r"'gated' is not supported.*standard"):
        load_pretrained(tmp_path / "gated")
    cfg = saelens_cfg("standard", normalize_activations="constant_norm_rescale")
    write_saelens(tmp_path / "norm", cfg, saelens_tensors("standard"))
    with pytest.raises(ValueError, match="normalize_activations"):
        load_pretrained(tmp_path / "norm")
    # SAELens applies no run-time scaling for this value (its trainer folds it), so neither do we.
    cfg = saelens_cfg("standard", normalize_activations="expected_average_only_in")
    write_saelens(tmp_path / "folded", cfg, saelens_tensors("standard"))
    with pytest.warns(UserWarning, match="expected_average_only_in"):
        assert load_pretrained(tmp_path / "folded").normalize_activations == "none"

    path = save_pretrained(make_trained_like(ReLUSAE), tmp_path / "ours")
    cfg = json.loads((path / "cfg.json").read_text())
    cfg["sae_fast"]["config"]["architecture"] = "matryoshka"
    (path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="matryoshka"):
        load_pretrained(path)


def test_extra_tensors_are_refused(tmp_path):
    tensors = {**saelens_tensors("standard"), "b_gate": rand(D_SAE)}
    write_saelens(tmp_path / "sae", saelens_cfg("standard"), tensors)
    with pytest.raises(ValueError, match="b_gate"):
        load_pretrained(tmp_path / "sae")


def test_load_validates_its_arguments(tmp_path):
    path = save_pretrained(make_trained_like(TopKSAE), tmp_path / "sae")
    with pytest.raises(ValueError, match="dtype"):
        load_pretrained(path, dtype="int8")
    with pytest.raises(TypeError, match="path"):
        load_pretrained(3)
    assert os.path.isdir(path)
