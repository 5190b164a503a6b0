"""On-disk activation cache: contents, manifest, resumption, corruption errors, NaN checks, reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sae_fast.activations.cache_writer as cache_writer
from sae_fast.activations import (
    ActivationCacheReader,
    ActivationConfig,
    TextList,
    capture_activations,
    extract_activations,
    tiny_random_model,
    token_sequences,
)

DOCS = [f"Document number {i} talks about topic {i % 7} at some length, then stops. " * (1 + i % 3) for i in range(40)]
HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model():
    return tiny_random_model(d_model=32, n_layers=2, seed=1)


def _config(**overrides) -> ActivationConfig:
    base = dict(hook_name=HOOK, seq_len=16, model_batch_size=3, batch_size=8, shuffle_buffer_size=0,
                max_tokens=150, cache_dtype="float32")
    return ActivationConfig(**{**base, **overrides})


def test_cache_holds_the_activations_tokens_and_manifest(model, tmp_path):
    config = _config()
    reader = extract_activations(model, TextList(DOCS), tmp_path / "c", config, progress=False)
    m = reader.manifest
    assert m["complete"] and m["sequences"] == 10 and m["count"] == 150  # 150 rows = 10 sequences of 15
    assert (m["model"], m["hook_name"], m["seq_len"], m["first_position"], m["d_model"], m["dtype"]) == (
        "tiny-random-llama", HOOK, 16, 1, 32, "float32")
    assert m["text_source"] == TextList(DOCS).fingerprint
    seqs = torch.stack(list(token_sequences(TextList(DOCS), model.tokenizer, 16))[:10])
    assert np.array_equal(reader.tokens, seqs.numpy())
    acts = capture_activations(model, seqs, HOOK)[:, 1:].reshape(-1, 32)
    torch.testing.assert_close(reader.rows(), acts, rtol=1e-6, atol=1e-6)
    sequence, position = reader.row_origin(np.array([0, 14, 15, 149]))
    assert sequence.tolist() == [0, 0, 1, 9] and position.tolist() == [1, 15, 1, 15]
    on_disk = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert on_disk == m


def test_float16_cache_matches_float32(model, tmp_path):
    full = extract_activations(model, TextList(DOCS), tmp_path / "f32", _config(), progress=False)
    half = extract_activations(model, TextList(DOCS), tmp_path / "f16", _config(cache_dtype="float16"), progress=False)
    assert half.activations.dtype == np.float16
    assert (tmp_path / "f16" / "activations.bin").stat().st_size * 2 == (tmp_path / "f32" / "activations.bin").stat().st_size
    torch.testing.assert_close(half.rows(), full.rows(), rtol=2e-3, atol=1e-4)


def test_interrupted_extraction_resumes_to_identical_files(model, tmp_path, monkeypatch):
    config = _config()
    reference = extract_activations(model, TextList(DOCS), tmp_path / "ref", config, progress=False)

    real = cache_writer.activation_rows
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_writer, "activation_rows", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(model, TextList(DOCS), tmp_path / "run", config, progress=False)
    partial = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert partial["sequences"] == 6 and partial["count"] == 90 and not partial["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        ActivationCacheReader(tmp_path / "run")
    assert ActivationCacheReader(tmp_path / "run", allow_incomplete=True).num_rows == 90

    monkeypatch.setattr(cache_writer, "activation_rows", real)
    calls["n"] = 0
    resumed = extract_activations(model, TextList(DOCS), tmp_path / "run", config, progress=False)
    assert resumed.manifest["complete"]
    for name in ("activations.bin", "tokens.bin"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    assert np.array_equal(resumed.activations, reference.activations)


def test_resume_refuses_different_settings_or_text(model, tmp_path, monkeypatch):
    directory = tmp_path / "c"
    real = cache_writer.activation_rows

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_writer, "activation_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(model, TextList(DOCS), directory, _config(), progress=False)
    monkeypatch.setattr(cache_writer, "activation_rows", real)
    with pytest.raises(ValueError, match="hook_name"):
        extract_activations(model, TextList(DOCS), directory, _config(hook_name="blocks.0.hook_resid_post"), progress=False)
    with pytest.raises(ValueError, match="text_source"):
        extract_activations(model, TextList(DOCS[1:]), directory, _config(), progress=False)


def test_resume_detects_changed_text_behind_a_matching_fingerprint(model, tmp_path, monkeypatch):
    class Impostor(TextList):
        @property
        def fingerprint(self) -> str:
            return TextList(DOCS).fingerprint

    real = cache_writer.activation_rows
    calls = {"n": 0}

    def crash_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_writer, "activation_rows", crash_second)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(model, TextList(DOCS), tmp_path / "c", _config(), progress=False)
    monkeypatch.setattr(cache_writer, "activation_rows", real)
    with pytest.raises(ValueError, match=r"sequence \d+ of the text differs"):
        extract_activations(model, Impostor(DOCS[::-1]), tmp_path / "c", _config(), progress=False)


def test_truncated_or_inconsistent_cache_is_a_clear_error(model, tmp_path):
    directory = tmp_path / "c"
    extract_activations(model, TextList(DOCS), directory, _config(), progress=False)
    path = directory / "activations.bin"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or inconsistent.*activations.bin"):
        ActivationCacheReader(directory)
    with pytest.raises(ValueError, match="truncated or inconsistent"):
        extract_activations(model, TextList(DOCS), directory, _config(), progress=False)
    path.write_bytes(data)
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, "count": 7}))
    with pytest.raises(ValueError, match="inconsistent"):
        ActivationCacheReader(directory)
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ActivationCacheReader(directory)


def test_foreign_directory_and_missing_max_tokens(model, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        extract_activations(model, TextList(DOCS), tmp_path / "c", _config(), progress=False)
    with pytest.raises(ValueError, match="max_tokens"):
        extract_activations(model, TextList(DOCS), tmp_path / "d", _config(max_tokens=None), progress=False)
    with pytest.raises(TypeError, match="fingerprint"):
        extract_activations(model, list(DOCS), tmp_path / "e", _config(), progress=False)


def test_nan_rows_are_named(model, tmp_path, monkeypatch):
    directory = tmp_path / "c"
    reader = extract_activations(model, TextList(DOCS), directory, _config(), progress=False)
    corrupt = np.memmap(directory / "activations.bin", dtype=np.float32, mode="r+", shape=reader.activations.shape)
    corrupt[17, 3] = np.nan
    corrupt[40, 0] = np.inf
    corrupt.flush()
    del corrupt
    with pytest.raises(ValueError, match=r"2 row\(s\), first rows \[17, 40\].*\(1, 3\)"):
        ActivationCacheReader(directory)
    assert ActivationCacheReader(directory, check_finite=False).num_rows == 150

    real = cache_writer.activation_rows

    def overflowing(*args, **kwargs):
        rows = real(*args, **kwargs)
        rows[4] = 1e6  # beyond float16's range
        return rows

    monkeypatch.setattr(cache_writer, "activation_rows", overflowing)
    with pytest.raises(ValueError, match=r"first rows \[4\].*float32"):
        extract_activations(model, TextList(DOCS), tmp_path / "h", _config(cache_dtype="float16"), progress=False)


def test_text_running_out_finishes_a_smaller_cache(model, tmp_path):
    directory = tmp_path / "c"
    config = _config(max_tokens=10_000)
    reader = extract_activations(model, TextList(DOCS[:5]), directory, config, progress=False)
    n_seqs = len(list(token_sequences(TextList(DOCS[:5]), model.tokenizer, 16)))
    assert reader.manifest["complete"] and reader.manifest["sequences"] == n_seqs
    assert (directory / "activations.bin").stat().st_size == n_seqs * 15 * 32 * 4
    again = extract_activations(model, TextList(DOCS[:5]), directory, config, progress=False)
    assert again.num_rows == reader.num_rows


def test_reader_batches_sample_and_mean(model, tmp_path):
    reader = extract_activations(model, TextList(DOCS), tmp_path / "c", _config(), progress=False)
    data = reader.rows()

    epochs = list(reader.batches(32, seed=3, epochs=2))
    assert len(epochs) == 2 * (150 // 32) and all(b.shape == (32, 32) for b in epochs)
    assert [torch.equal(a, b) for a, b in zip(epochs, reader.batches(32, seed=3, epochs=2))] == [True] * len(epochs)
    other = torch.cat(list(reader.batches(32, seed=4, epochs=1)))
    assert not torch.equal(other, torch.cat(epochs[:4]))
    first_epoch = torch.cat(epochs[:4])
    rows_seen = {tuple(r) for r in first_epoch.tolist()}
    assert len(rows_seen) == 128 and rows_seen <= {tuple(r) for r in data.tolist()}
    assert not torch.equal(torch.cat(epochs[:4]), torch.cat(epochs[4:])), "each epoch has its own order"

    sample = reader.sample(20, seed=0)
    assert len({tuple(r) for r in sample.tolist()}) == 20
    torch.testing.assert_close(reader.mean(), data.double().mean(0).float())
    with pytest.raises(ValueError, match="n must be"):
        reader.sample(151)


def test_empty_text_is_an_error(model, tmp_path):
    with pytest.raises(ValueError, match="no complete sequence"):
        extract_activations(model, TextList(["too short"]), tmp_path / "c", _config(), progress=False)
