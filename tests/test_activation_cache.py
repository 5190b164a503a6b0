"""On-disk activation cache: contents, manifest, resumption, corruption errors, NaN checks, reading."""

from __future__ import annotations

import errno
import json
import os

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
                max_tokens=150, cache_dtype="float32", heldout_fraction=0.0)
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


def _sinks_every_chunk(monkeypatch, scale: float = 100.0) -> None:
    """Make row 0 of every extracted chunk an attention-sink-like row (norm ``scale`` times larger)."""
    real = cache_writer.activation_rows

    def with_sink(*args, **kwargs):
        rows = real(*args, **kwargs).clone()
        rows[0] *= scale
        return rows

    monkeypatch.setattr(cache_writer, "activation_rows", with_sink)


def test_heldout_split_is_the_last_sequences_and_never_trained_on(model, tmp_path):
    directory = tmp_path / "c"
    extract_activations(model, TextList(DOCS), directory, _config(heldout_fraction=0.2), progress=False)
    train = ActivationCacheReader(directory)
    heldout = ActivationCacheReader(directory, split="heldout")
    everything = ActivationCacheReader(directory, split="all")
    assert train.manifest["heldout_sequences"] == 2 and train.split == "train"
    assert (train.num_sequences, heldout.num_sequences, everything.num_sequences) == (8, 2, 10)
    assert (train.num_rows, heldout.num_rows, everything.num_rows) == (120, 30, 150)
    assert heldout.first_sequence == 8 and np.array_equal(heldout.tokens, everything.tokens[8:])
    torch.testing.assert_close(torch.cat([train.rows(), heldout.rows()]), everything.rows())
    assert heldout.row_origin(np.array([0, 29]))[0].tolist() == [0, 1]  # rows of heldout.tokens
    seen = {tuple(r) for b in train.batches(8, seed=0, epochs=3) for r in b.tolist()}
    assert seen and seen.isdisjoint({tuple(r) for r in heldout.rows().tolist()})
    with pytest.raises(ValueError, match="split must be one of"):
        ActivationCacheReader(directory, split="test")


def test_cache_without_heldout_split_or_new_fields_reads_as_before(model, tmp_path):
    directory = tmp_path / "c"
    new = extract_activations(model, TextList(DOCS), directory, _config(heldout_fraction=0.2), progress=False)
    fingerprint, norms = new.fingerprint, np.array(new.all_row_norms())
    manifest = json.loads((directory / "manifest.json").read_text())
    for field in ("heldout_sequences", "heldout_fraction", "fingerprint", "row_norms", "model_source", "autocast"):
        del manifest[field]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "norms.bin").unlink()
    old = ActivationCacheReader(directory)
    assert old.num_rows == 150 and old.fingerprint == fingerprint
    np.testing.assert_allclose(old.all_row_norms(), norms, rtol=1e-6)
    assert old.model_source == "tiny-random-llama"  # the label, for lack of anything better
    with pytest.raises(ValueError, match="before held-out splits existed"):
        ActivationCacheReader(directory, split="heldout")
    with pytest.raises(ValueError, match="autocast: cache has 'none', now 'bfloat16'"):
        manifest["complete"] = False
        (directory / "manifest.json").write_text(json.dumps(manifest))
        extract_activations(model, TextList(DOCS), directory, _config(autocast="bfloat16"), progress=False)


def test_fingerprint_and_identity_tell_caches_apart(model, tmp_path):
    a = extract_activations(model, TextList(DOCS), tmp_path / "a", _config(), progress=False)
    b = extract_activations(model, TextList(DOCS), tmp_path / "b", _config(), progress=False)
    c = extract_activations(model, TextList(DOCS[1:]), tmp_path / "c", _config(), progress=False)
    assert a.fingerprint.startswith("sha256:") and a.fingerprint == b.fingerprint != c.fingerprint
    assert a.manifest["fingerprint"] == a.fingerprint
    identity = ActivationCacheReader(tmp_path / "a", split="all", max_norm_ratio=5.0).identity()
    assert identity == {"model": "tiny-random-llama", "hook_name": HOOK, "d_model": 32, "dtype": "float32",
                        "count": 150, "fingerprint": a.fingerprint, "split": "all", "max_norm_ratio": 5.0}


def test_sink_rows_are_stored_with_their_norms_and_filtered_when_reading(model, tmp_path, monkeypatch):
    _sinks_every_chunk(monkeypatch)
    directory = tmp_path / "c"
    extract_activations(model, TextList(DOCS), directory, _config(), progress=False)  # 4 chunks of 3 sequences
    plain = ActivationCacheReader(directory)
    np.testing.assert_allclose(plain.all_row_norms(), plain.rows().norm(dim=1).numpy(), rtol=1e-5)
    assert plain.kept_rows is None and plain.sink_filter_stats() == {
        "max_norm_ratio": None, "split_rows": 150, "excluded_rows": 0}
    reader = ActivationCacheReader(directory, max_norm_ratio=10.0)
    stats = reader.sink_filter_stats()
    assert stats["excluded_rows"] == 4 and reader.num_kept_rows == 146 and stats["excluded_fraction"] == 4 / 150
    assert stats["threshold"] == pytest.approx(10 * np.median(plain.all_row_norms()))
    sinks = {0, 45, 90, 135}
    assert set(range(150)) - set(reader.kept_rows.tolist()) == sinks
    kept = plain.rows()[reader.kept_rows]
    torch.testing.assert_close(reader.mean(), kept.double().mean(0).float())
    served = torch.cat(list(reader.batches(16, seed=1, epochs=1)))
    assert served.shape == (16 * (146 // 16), 32) and float(served.norm(dim=1).max()) <= stats["threshold"]
    assert np.array_equal(reader.kept_activations(), plain.activations[reader.kept_rows])
    assert float(reader.sample(146).norm(dim=1).max()) <= stats["threshold"]


def test_full_disk_fails_up_front_and_leaves_no_cache(model, tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_writer.os, "posix_fallocate", no_space)
    directory = tmp_path / "c"
    with pytest.raises(OSError, match="no space left on the device .* needs") as caught:
        extract_activations(model, TextList(DOCS), directory, _config(), progress=False)
    assert caught.value.errno == errno.ENOSPC
    assert not directory.exists() or list(directory.iterdir()) == []


def test_unwritable_directory_is_a_clear_error(model, tmp_path, monkeypatch):
    def denied(fd, offset, length):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(cache_writer.os, "posix_fallocate", denied)
    with pytest.raises(OSError, match="cannot write the cache .*read-only file system"):
        extract_activations(model, TextList(DOCS), tmp_path / "ro", _config(), progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_is_a_clear_error(model, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(OSError, match="cannot write the cache .*permission denied"):
            extract_activations(model, TextList(DOCS), parent / "c", _config(), progress=False)
    finally:
        parent.chmod(0o700)


def test_bfloat16_autocast_is_recorded_and_close_to_float32(model, tmp_path):
    full = extract_activations(model, TextList(DOCS), tmp_path / "f32", _config(), progress=False)
    half = extract_activations(model, TextList(DOCS), tmp_path / "bf16", _config(autocast="bfloat16"), progress=False)
    assert (full.manifest["autocast"], half.manifest["autocast"]) == ("none", "bfloat16")
    error = (half.rows() - full.rows()).norm() / full.rows().norm()
    assert 0 < float(error) < 0.05
