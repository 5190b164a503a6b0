"""Model loading, hooks, text sources, sequences, shuffle buffer, activation stream and CE splicing.

Everything runs on a tiny randomly initialised Llama bridge (``tiny_random_model``). The SmolLM2 test
loads the real offline model (~20 s) and only runs with SAE_FAST_RUN_SMOLLM2=1.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from sae_fast.activations import (
    ActivationConfig,
    ActivationStream,
    LocalTextFiles,
    OfflineProse,
    ShuffleBuffer,
    TextList,
    activation_rows,
    capture_activations,
    char_tokenizer,
    ce_loss_with_replacement,
    check_hook_name,
    clean_loss,
    hook_layer,
    load_model,
    mean_ablation,
    next_token_loss,
    resid_hook_name,
    run_with_replacement,
    stop_at_layer_for_hook,
    text_source_from_spec,
    tiny_random_model,
    token_sequences,
    zero_ablation,
)
from sae_fast.activations.models import model_source
from sae_fast.activations.sequences import default_separator_token_id

DOCS = [
    "The quick brown fox jumps over the lazy dog. " * 4,
    "Sparse autoencoders decompose activations into features.",
    "",
    "A third document, with punctuation; and numbers 12345!\nNew line here.",
    "Short.",
] * 3


@pytest.fixture(scope="module")
def model():
    return tiny_random_model(d_model=32, n_layers=3, seed=0)


@pytest.fixture(scope="module")
def tokens(model):
    seqs = list(token_sequences(TextList(DOCS), model.tokenizer, 16))
    return torch.stack(seqs[:6])


def _rows_as_set(rows: torch.Tensor) -> Counter:
    return Counter(tuple(r) for r in rows.to(torch.float64).numpy().round(5).tolist())


# --- hook names ----------------------------------------------------------------------------------------


def test_hook_name_helpers():
    assert resid_hook_name(15) == "blocks.15.hook_resid_post"
    assert resid_hook_name(3, "pre") == "blocks.3.hook_resid_pre"
    assert hook_layer("blocks.15.hook_resid_post") == 15
    assert hook_layer("ln_final.hook_normalized") is None
    assert stop_at_layer_for_hook("blocks.4.attn.hook_z") == 5
    with pytest.raises(ValueError, match="site"):
        resid_hook_name(1, "middle")
    with pytest.raises(ValueError, match="layer"):
        resid_hook_name(-1)


def test_check_hook_name_explains_bad_names(model):
    assert check_hook_name(model, "blocks.2.hook_resid_post") == "blocks.2.hook_resid_post"
    with pytest.raises(ValueError, match="blocks 0..2"):
        check_hook_name(model, "blocks.7.hook_resid_post")
    with pytest.raises(ValueError, match="close names: .*blocks.1.hook_resid_post"):
        check_hook_name(model, "blocks.1.hook_resid_pst")
    with pytest.raises(TypeError):
        check_hook_name(model, 3)


# --- capture -------------------------------------------------------------------------------------------


def test_capture_matches_hf_hidden_states(model, tokens):
    hf = model.original_model
    with torch.no_grad():
        hidden = hf(tokens, output_hidden_states=True).hidden_states
    for layer in range(3):
        post = capture_activations(model, tokens, resid_hook_name(layer))
        assert post.shape == (tokens.shape[0], tokens.shape[1], 32)
        if layer < 2:  # the last hidden state of HF is after the final norm
            torch.testing.assert_close(post, hidden[layer + 1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(capture_activations(model, tokens, resid_hook_name(layer + 1, "pre")), post)


def test_capture_stops_the_forward_pass_and_cleans_up(model, tokens):
    layers = model.original_model.model.layers
    calls = []
    handle = layers[-1].register_forward_hook(lambda *args: calls.append(1))
    try:
        clean_logits = model(tokens, return_type="logits")
        n_full = len(calls)
        capture_activations(model, tokens, "blocks.0.hook_resid_post")
        assert n_full == 1 and len(calls) == 1, "layers after the hook must not run"
    finally:
        handle.remove()
    torch.testing.assert_close(model(tokens, return_type="logits"), clean_logits)


def test_capture_rejects_bad_tokens(model):
    with pytest.raises(TypeError, match="int64"):
        capture_activations(model, torch.zeros(2, 4), "blocks.0.hook_resid_post")
    with pytest.raises(TypeError):
        capture_activations(model, torch.zeros(8, dtype=torch.long), "blocks.0.hook_resid_post")


# --- replacement and CE --------------------------------------------------------------------------------


def test_identity_replacement_is_clean(model, tokens):
    hook = "blocks.1.hook_resid_post"
    with torch.no_grad():
        clean = model(tokens, return_type="logits")
        spliced = run_with_replacement(model, tokens, hook, lambda a: a.clone())
    torch.testing.assert_close(spliced, clean)
    assert ce_loss_with_replacement(model, tokens, hook, lambda a: a) == pytest.approx(clean_loss(model, tokens).item(), abs=1e-6)


def test_replacement_keeps_positions_before_first_position(model, tokens):
    hook = "blocks.1.hook_resid_post"
    with torch.no_grad():
        clean = model(tokens, return_type="logits")
        ablated = run_with_replacement(model, tokens, hook, zero_ablation, first_position=1)
        ablated_all = run_with_replacement(model, tokens, hook, zero_ablation, first_position=0)
    torch.testing.assert_close(ablated[:, 0], clean[:, 0])
    assert (ablated[:, 1:] - clean[:, 1:]).abs().amax() > 1e-3
    assert (ablated_all[:, 0] - clean[:, 0]).abs().amax() > 1e-3


def test_replacement_sees_only_replaced_positions(model, tokens):
    seen = []

    def spy(acts):
        seen.append(acts.shape)
        return acts

    run_with_replacement(model, tokens, "blocks.0.hook_resid_post", spy, first_position=3)
    assert seen == [torch.Size([tokens.shape[0], tokens.shape[1] - 3, 32])]
    with pytest.raises(ValueError, match="shape"):
        run_with_replacement(model, tokens, "blocks.0.hook_resid_post", lambda a: a[:, 1:])


def test_losses_use_the_documented_positions(model, tokens):
    with torch.no_grad():
        logits = model(tokens, return_type="logits")
    manual = F.cross_entropy(logits[:, 1:-1].reshape(-1, logits.shape[-1]), tokens[:, 2:].reshape(-1))
    assert clean_loss(model, tokens).item() == pytest.approx(manual.item(), rel=1e-6)
    full = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    assert next_token_loss(logits, tokens, first_position=0).item() == pytest.approx(full.item(), rel=1e-6)
    zero = ce_loss_with_replacement(model, tokens, "blocks.1.hook_resid_post", zero_ablation)
    assert abs(zero.item() - manual.item()) > 1e-3


def test_mean_ablation(model, tokens):
    mean = torch.randn(32)
    replace = mean_ablation(mean)
    out = replace(torch.zeros(2, 5, 32))
    assert torch.equal(out, mean.expand(2, 5, 32))
    loss = ce_loss_with_replacement(model, tokens, "blocks.1.hook_resid_post", replace)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="width"):
        mean_ablation(torch.zeros(7))(torch.zeros(1, 2, 32))


# --- sequences -----------------------------------------------------------------------------------------


def test_sequences_pack_documents_with_separators(model):
    tok = model.tokenizer
    sep = default_separator_token_id(tok)
    assert tok.convert_ids_to_tokens(sep) == "<|endoftext|>"
    stream: list[int] = []
    for doc in DOCS:
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        if ids:
            stream += ids + [sep]
    seqs = list(token_sequences(TextList(DOCS), tok, 16, docs_per_call=2))
    assert len(seqs) == len(stream) // 16
    assert torch.cat(seqs).tolist() == stream[: 16 * len(seqs)]
    no_sep = list(token_sequences(TextList(DOCS), tok, 16, separator_token_id=None))
    assert sep not in torch.cat(no_sep).tolist()


def test_sequences_validate(model):
    with pytest.raises(ValueError, match="seq_len"):
        list(token_sequences(TextList(DOCS), model.tokenizer, 1))
    with pytest.raises(ValueError, match="BOS"):  # the raw tokenizer; the bridge sets BOS = EOS on its copy
        list(token_sequences(TextList(DOCS), char_tokenizer(), 8, prepend_bos=True))
    with_bos = list(token_sequences(TextList(DOCS), model.tokenizer, 8, prepend_bos=True))
    assert all(seq[0].item() == model.tokenizer.bos_token_id for seq in with_bos)
    with pytest.raises(TypeError, match="strings"):
        list(token_sequences([b"bytes"], model.tokenizer, 8))


# --- shuffle buffer ------------------------------------------------------------------------------------


def test_shuffle_buffer_is_a_seeded_permutation():
    rows = torch.arange(1000, dtype=torch.float32).repeat_interleave(2).reshape(-1, 2)

    def run(seed, capacity=64):
        buffer = ShuffleBuffer(capacity, 16, seed)
        out = [b for start in range(0, 1000, 37) for b in buffer.add(rows[start : start + 37])]
        out += list(buffer.flush(drop_last=False))
        return torch.cat(out)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert sorted(a[:, 0].tolist()) == list(range(1000))
    assert not torch.equal(a, rows), "rows must be mixed"
    first_batch = a[:16, 0]
    assert first_batch.max() - first_batch.min() > 16, "a batch mixes rows from far apart"
    ordered = run(0, capacity=0)
    assert torch.equal(ordered, rows)


def test_shuffle_buffer_drop_last_and_validation():
    buffer = ShuffleBuffer(32, 8, 0)
    out = list(buffer.add(torch.zeros(21, 3))) + list(buffer.flush(drop_last=True))
    assert [b.shape[0] for b in out] == [8, 8]
    with pytest.raises(ValueError, match="capacity"):
        ShuffleBuffer(10, 8)


# --- stream --------------------------------------------------------------------------------------------


def _config(**overrides):
    base = dict(hook_name="blocks.1.hook_resid_post", seq_len=16, model_batch_size=4, batch_size=24,
                shuffle_buffer_size=96, seed=0)
    return ActivationConfig(**{**base, **overrides})


def test_stream_yields_exactly_the_activations_of_positions_from_first_position(model):
    config = _config()
    texts = TextList(DOCS)
    seqs = torch.stack(list(token_sequences(texts, model.tokenizer, 16)))
    all_acts = capture_activations(model, seqs, config.hook_name)
    expected = all_acts[:, 1:].reshape(-1, 32)
    batches = list(ActivationStream(model, texts, config))
    assert all(b.shape == (24, 32) and b.dtype == torch.float32 for b in batches)
    got = torch.cat(batches)
    assert got.shape[0] == expected.shape[0] // 24 * 24
    assert not (_rows_as_set(got) - _rows_as_set(expected)), "every row is an activation at position >= 1"
    position0 = _rows_as_set(all_acts[:, 0])
    assert not (position0 & _rows_as_set(got)), "position 0 is excluded"


def test_stream_is_deterministic_and_seeded(model):
    texts = TextList(DOCS)
    first = torch.cat(list(ActivationStream(model, texts, _config())))
    again = torch.cat(list(ActivationStream(model, texts, _config())))
    other = torch.cat(list(ActivationStream(model, texts, _config(seed=5))))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == other.shape
    # the dropped tails differ between seeds, so compare the bulk: most rows are shared
    shared = sum((_rows_as_set(first) & _rows_as_set(other)).values())
    assert shared >= first.shape[0] - 24


def test_stream_max_tokens_and_validation(model):
    stream = ActivationStream(model, TextList(DOCS), _config(max_tokens=50, shuffle_buffer_size=0))
    batches = list(stream)
    assert sum(b.shape[0] for b in batches) == 48  # 50 rows taken, tail of the last batch dropped
    assert stream.sequences_read == 4  # 15 rows per sequence: 4 sequences reach 50
    with pytest.raises(TypeError, match="single str"):
        ActivationStream(model, "just one text", _config())
    with pytest.raises(ValueError, match="no hook"):
        ActivationStream(model, TextList(DOCS), _config(hook_name="blocks.1.hook_nothing"))


def test_stream_drops_rows_above_the_median_norm_of_the_first_batch(model, monkeypatch):
    import sae_fast.activations.stream as stream_module

    real = stream_module.activation_rows

    def with_sink(*args, **kwargs):
        rows = real(*args, **kwargs).clone()
        rows[0] *= 100.0  # one sink row per forward batch
        return rows

    monkeypatch.setattr(stream_module, "activation_rows", with_sink)
    config = _config(shuffle_buffer_size=0, max_norm_ratio=10.0)
    stream = ActivationStream(model, TextList(DOCS), config)
    kept = torch.cat(list(stream))
    unfiltered = torch.cat(list(ActivationStream(model, TextList(DOCS), _config(shuffle_buffer_size=0))))
    stats = stream.sink_filter_stats()
    n_forward = -(-stream.sequences_read // config.model_batch_size)
    assert stats["excluded_rows"] == n_forward and stats["median_estimated_from"] == "first forward batch"
    assert float(kept.norm(dim=1).max()) <= stats["threshold"] < float(unfiltered.norm(dim=1).max())
    assert ActivationStream(model, TextList(DOCS), _config()).sink_filter_stats() == {
        "max_norm_ratio": None, "excluded_rows": 0}
    with pytest.raises(ValueError, match="max_norm_ratio"):
        _config(max_norm_ratio=0.5)


def test_bfloat16_autocast_rows_are_float32_and_close(model, tokens):
    full = activation_rows(model, tokens, "blocks.1.hook_resid_post")
    half = activation_rows(model, tokens, "blocks.1.hook_resid_post", autocast="bfloat16")
    assert half.dtype == torch.float32 and 0 < float((half - full).norm() / full.norm()) < 0.05
    with pytest.raises(ValueError, match="autocast"):
        _config(autocast="float8")


def test_activation_rows_layout(model, tokens):
    rows = activation_rows(model, tokens, "blocks.0.hook_resid_post", first_position=2)
    acts = capture_activations(model, tokens, "blocks.0.hook_resid_post")
    per = tokens.shape[1] - 2
    assert torch.equal(rows[1 * per + (5 - 2)], acts[1, 5])


def test_config_validation():
    with pytest.raises(ValueError, match="first_position"):
        ActivationConfig(seq_len=8, first_position=8)
    with pytest.raises(ValueError, match="shuffle_buffer_size"):
        ActivationConfig(batch_size=4096, shuffle_buffer_size=5000)
    with pytest.raises(ValueError, match="cache_dtype"):
        ActivationConfig(cache_dtype="bfloat16")
    config = ActivationConfig(max_tokens=100)
    assert ActivationConfig.from_dict(config.to_dict()) == config
    assert config.rows_per_sequence == 127


# --- text sources --------------------------------------------------------------------------------------


def test_local_text_files(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    with open(tmp_path / "b.jsonl", "w") as handle:
        for text in ["second", "third"]:
            handle.write(json.dumps({"text": text, "id": 1}) + "\n")
        handle.write("\n")
    source = LocalTextFiles(tmp_path)
    assert list(source) == ["first document", "second", "third"]
    fingerprint = source.fingerprint
    (tmp_path / "a.txt").write_text("first document, edited")
    assert LocalTextFiles(tmp_path).fingerprint != fingerprint
    assert list(text_source_from_spec(str(tmp_path / "b.jsonl"))) == ["second", "third"]
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(ValueError, match="c.jsonl:1"):
        list(LocalTextFiles(tmp_path / "c.jsonl"))
    with pytest.raises(FileNotFoundError):
        LocalTextFiles(tmp_path / "missing.txt")


def test_text_list_fingerprint():
    assert TextList(["a", "b"]).fingerprint == TextList(["a", "b"]).fingerprint
    assert TextList(["a", "b"]).fingerprint != TextList(["a", "c"]).fingerprint
    with pytest.raises(TypeError):
        TextList(["a", 3])


def test_spec_parsing_does_not_touch_the_network():
    source = text_source_from_spec("openwebtext")
    assert source.fingerprint == "hf:Skylion007/openwebtext::train:text"
    assert text_source_from_spec("hf:user/data:validation:body").fingerprint == "hf:user/data::validation:body"
    with pytest.raises(ValueError):
        text_source_from_spec("hf:")


def test_seed_reorders_offline_prose_only(tmp_path):
    assert text_source_from_spec("offline-prose", seed=3).seed == 3
    (tmp_path / "a.txt").write_text("some text")
    assert not hasattr(text_source_from_spec(str(tmp_path), seed=3), "seed")


def test_offline_prose_extracts_docstring_and_rest_prose(tmp_path):
    pkg = tmp_path / "py"
    pkg.mkdir()
    (pkg / "mod.py").write_text(
        '"""This module explains how the example works in plain English sentences for readers.\n\n'
        '>>> print("code is dropped")\n'
        '"""\n\n'
        "def f(x):\n"
        '    """Return the value that was given, without changing it in any way at all, as promised.\n\n'
        "    x (int): a parameter entry that must not count as prose because it is a table row.\n"
        '    """\n'
        "    return x\n"
    )
    (pkg / "broken.py").write_text("def (:\n")
    rst = tmp_path / "rst"
    rst.mkdir()
    (rst / "page.rst.txt").write_text(
        "Title\n=====\n\nThe :func:`len` function returns the number of items in a container object.\n\n"
        ".. note::\n\n   directive body\n"
    )
    source = OfflineProse(python_roots=[pkg], rst_roots=[rst], min_chars=50)
    docs = list(source)
    assert len(docs) == 2
    joined = "\n".join(docs)
    assert "This module explains how the example works" in joined
    assert "Return the value that was given" in joined
    assert "The len function returns the number of items" in joined
    assert "code is dropped" not in joined and "parameter entry" not in joined and ".. note" not in joined
    assert list(OfflineProse(python_roots=[pkg], rst_roots=[rst], min_chars=50)) == docs
    assert source.fingerprint.startswith("offline-prose:seed=0")


# --- model loading -------------------------------------------------------------------------------------


def test_load_model_validates_arguments(model):
    with pytest.raises(TypeError, match="Hub name"):
        load_model(12)
    with pytest.raises(ValueError, match="tokenizer"):
        load_model(model.original_model)
    with pytest.raises(TypeError, match="dtype"):
        load_model(model.original_model, dtype="float32", tokenizer=model.tokenizer)


def test_tiny_model_is_seeded():
    a = tiny_random_model(d_model=16, n_layers=1, seed=3)
    b = tiny_random_model(d_model=16, n_layers=1, seed=3)
    x = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(a(x, return_type="logits"), b(x, return_type="logits"))


@pytest.mark.skipif(not os.environ.get("SAE_FAST_RUN_SMOLLM2"), reason="loads SmolLM2 (~20 s); set SAE_FAST_RUN_SMOLLM2=1")
def test_smollm2_offline_load_and_position0_norm():
    from sae_fast.activations import find_smollm2_gguf

    find_smollm2_gguf()
    smol = load_model()
    assert smol.cfg.d_model == 576 and smol.cfg.n_layers == 30
    assert model_source(smol) == "smollm2-135m-gguf"  # so a cache of it is CE-evaluated offline
    text = " ".join(DOCS[:2]) * 10
    ids = smol.tokenizer(text, add_special_tokens=False)["input_ids"][:64]
    acts = capture_activations(smol, torch.tensor([ids]), resid_hook_name(15))
    norms = acts[0].norm(dim=-1)
    assert norms[0] > 20 * norms[1:].median(), "position 0 is the attention sink"
    loss = clean_loss(smol, torch.tensor([ids]))
    assert 0.0 < loss.item() < 6.0


def test_hub_offline_sets_and_restores_the_switch(monkeypatch):
    import huggingface_hub.constants as hub_constants

    from sae_fast.activations import hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with hub_offline():
        assert hub_constants.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub_constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ
