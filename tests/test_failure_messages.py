"""Every failure says what went wrong, where (file, line, field or path) and the one way forward."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import namedtuple

import pytest
import torch
from safetensors import SafetensorError

from sae_fast import BatchTopKSAE, TopKSAE, load_pretrained, save_pretrained
from sae_fast.activations import ActivationCacheReader, ActivationConfig, LocalTextFiles, TextList, extract_activations
from sae_fast.activations.tiny_model import tiny_random_model
from sae_fast.cli import main
from sae_fast.io import atomic, native
from sae_fast.io.atomic import atomic_write_text
from sae_fast.meta.explain import LatentCard, TokenContext, write_context_page
from sae_fast.training import TrainConfig
from sae_fast.training.checkpoint import save_checkpoint

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_random_model()


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("cache") / "c"
    config = ActivationConfig(hook_name=HOOK, seq_len=16, max_tokens=600)
    extract_activations(tiny_model, TextList(["sparse autoencoders find features. " * 40]), folder, config,
                        progress=False)
    return folder


def saved_sae(folder, cls=BatchTopKSAE, d_in=8, d_sae=32):
    sae = cls(d_in, d_sae, 2, seed=0)
    sae.training_loss(torch.randn(64, d_in))
    return save_pretrained(sae.eval(), folder)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# ------------------------------------------------------------------------------------------- input files
@pytest.mark.parametrize("bad_line", [1, 3])
def test_a_non_utf8_jsonl_line_is_named_by_file_and_line(tmp_path, bad_line):
    lines = [b'{"text": "fine"}'] * 4
    lines[bad_line - 1] = b'{"text": "caf\xe9"}'
    (tmp_path / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError, match=rf"docs\.jsonl:{bad_line}: not UTF-8"):
        list(LocalTextFiles(tmp_path / "docs.jsonl"))


def test_deeply_nested_json_is_refused_cleanly(tmp_path, cache):
    folder = saved_sae(tmp_path / "sae")
    (folder / "cfg.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"cfg\.json nests JSON too deeply"):
        load_pretrained(folder)
    bad = tmp_path / "bad_cache"
    shutil.copytree(cache, bad)
    (bad / "manifest.json").write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    with pytest.raises(ValueError, match=r"manifest\.json nests JSON too deeply"):
        ActivationCacheReader(bad)
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match=r"deep\.jsonl:1 nests JSON too deeply"):
        list(LocalTextFiles(tmp_path / "deep.jsonl"))


@pytest.mark.parametrize("field", ["d_model", "capacity_sequences", "seq_len", "complete"])
def test_a_manifest_missing_a_field_names_the_field_and_the_file(tmp_path, cache, field):
    bad = tmp_path / "bad_cache"
    shutil.copytree(cache, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    del manifest[field]
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"manifest\.json lacks the field\(s\) \['{field}'\]"):
        ActivationCacheReader(bad)
    code = main(["eval", "--sae", str(saved_sae(tmp_path / "sae", d_in=32)), "--cache", str(bad), "--no-progress"])
    assert code == 2


@pytest.mark.parametrize("existed", [False, True])
def test_an_empty_text_source_leaves_no_cache_behind(tmp_path, tiny_model, existed):
    folder = tmp_path / "c"
    if existed:
        folder.mkdir()
    config = ActivationConfig(hook_name=HOOK, seq_len=16, max_tokens=200)
    for texts in (TextList([]), TextList(["too short"])):
        with pytest.raises(ValueError, match="yielded no complete sequence"):
            extract_activations(tiny_model, texts, folder, config, progress=False)
        assert folder.exists() == existed and (not existed or not any(folder.iterdir()))
    # The same folder takes a real extraction afterwards.
    reader = extract_activations(tiny_model, TextList(["enough text here. " * 100]), folder, config, progress=False)
    assert reader.activations.shape[0] > 0


# ------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("flag", [["--lr", "inf"], ["--lr", "nan"], ["--betas", "0.9", "inf"], ["--eps=-inf"],
                                  ["--max-norm-ratio", "nan"]])
def test_non_finite_float_flags_are_refused_by_the_parser(tmp_path, cache, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--cache", str(cache), "--sae", "a=topk:d_sae=16,k=2", "--out", str(tmp_path / "run"), *flag])
    assert exit_info.value.code == 2
    assert "not a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("lr", math.nan), ("eps", math.inf)])
def test_train_config_refuses_non_finite_values(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be a finite number > 0"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("batches", ["0", "-2"])
def test_recalibrate_batches_is_checked_before_training(tmp_path, cache, batches, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:  # refused when the command line is parsed
        main(["train", "--cache", str(cache), "--sae", "a=batchtopk:d_sae=16,k=2", "--out", str(out),
              "--batch-size", "32", "--total-tokens", "64", "--no-progress", "--recalibrate-batches", batches])
    assert exit_info.value.code == 2
    assert "argument --recalibrate-batches: must be an integer >= 1" in capsys.readouterr().err
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()


def test_a_run_killed_before_its_first_checkpoint_has_one_way_forward(tmp_path, cache, capsys):
    out = tmp_path / "run"
    train = ["train", "--cache", str(cache), "--sae", "a=topk:d_sae=16,k=2", "--out", str(out), "--batch-size", "32",
             "--total-tokens", "64", "--no-progress"]
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')  # what a kill before the first checkpoint leaves
    assert main(train) == 2
    plain = capsys.readouterr().err
    assert main([*train, "--resume"]) == 2
    resumed = capsys.readouterr().err
    assert "--overwrite" in plain and "--overwrite" in resumed and "nothing to resume" in resumed
    assert main([*train, "--overwrite"]) == 0  # the way both messages point to works


# ------------------------------------------------------------------------------------------- leftovers
def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    pid, host = dead_pid(), socket.gethostname()
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    stale = [checkpoints / f".checkpoint.pt.{pid}@{host}.x1y2.tmp", tmp_path / f".sae.tmp-{pid}@{host}-abc"]
    alive = [checkpoints / f".checkpoint.pt.{os.getpid()}@{host}.x3.tmp", tmp_path / f".sae.tmp-1@{host}-abc"]
    foreign = [checkpoints / "notes.tmp", checkpoints / f".other.pt.{pid}@{host}.x.tmp", tmp_path / ".sae.tmp-zzz"]
    for path in stale + alive + foreign:
        if path.name.endswith(".tmp"):
            path.write_bytes(b"partial")
        else:
            path.mkdir()
    save_checkpoint(checkpoints / "checkpoint.pt", {"step": torch.tensor(1)})
    saved_sae(tmp_path / "sae")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in alive + foreign)


def test_a_save_set_aside_by_a_killed_write_is_restored_not_deleted(tmp_path):
    folder = saved_sae(tmp_path / "sae", cls=TopKSAE)
    expected = load_pretrained(folder).W_dec.clone()
    aside = tmp_path / f".sae.old-{dead_pid()}@{socket.gethostname()}-q"
    aside.mkdir()
    os.replace(folder, aside / "sae")  # killed between the two renames: only the set-aside copy is left
    atomic_write_text(tmp_path / "unrelated.txt", "x")  # a write of another name leaves it alone
    assert aside.exists() and not folder.exists()
    atomic.remove_stale_leftovers(folder)  # what the next save of this name does first
    assert not aside.exists()
    torch.testing.assert_close(load_pretrained(folder).W_dec, expected)


# ------------------------------------------------------------------------------------------- disk full
Usage = namedtuple("Usage", "total used free")


def test_a_full_disk_is_reported_before_saving_with_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: Usage(10**9, 10**9 - 1000, 1000))
    sae = TopKSAE(8, 64, 2, seed=0)
    with pytest.raises(OSError) as info:
        save_pretrained(sae, tmp_path / "sae")
    assert info.value.errno == errno.ENOSPC and str(tmp_path) in info.value.filename
    assert not (tmp_path / "sae").exists() and not list(tmp_path.iterdir())


def test_a_serialiser_failure_is_an_os_error_naming_the_folder(tmp_path, monkeypatch):
    def full(tensors, path):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                              'left on device" })')

    monkeypatch.setattr(native, "save_file", full)
    with pytest.raises(OSError) as info:
        save_pretrained(TopKSAE(8, 16, 2, seed=0), tmp_path / "sae")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "sae")


def test_atomic_writes_name_the_file_when_the_os_does_not(tmp_path, monkeypatch):
    def fail_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", fail_fsync)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "result.json", "{}")
    assert info.value.filename == str(tmp_path / "result.json")
    assert list(tmp_path.iterdir()) == []


def test_meta_refuses_a_full_disk_before_training(tmp_path, monkeypatch, capsys):
    sae = saved_sae(tmp_path / "sae", d_sae=48)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: Usage(10**9, 10**9 - 1000, 1000))
    code = main(["meta", "--sae", str(sae), "--out", str(tmp_path / "meta"), "--n-meta-latents", "8", "--k", "2",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "No space" in err or "MiB are free" in err
    assert str(tmp_path / "meta") in err
    assert not (tmp_path / "meta" / "meta_sae").exists()


def test_meta_keeps_its_trained_work_when_the_save_fails(tmp_path, monkeypatch, capsys):
    sae = saved_sae(tmp_path / "sae", d_sae=48)
    out = tmp_path / "meta"
    real_save = native.save_file

    def full_under_out(tensors, path):
        if str(path).startswith(str(out)):
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        real_save(tensors, path)

    monkeypatch.setattr(native, "save_file", full_under_out)
    code = main(["meta", "--sae", str(sae), "--out", str(out), "--n-meta-latents", "8", "--k", "2", "--epochs", "2",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    rescued = err.split("was saved to ")[1].split(" instead")[0]
    try:
        assert load_pretrained(rescued).d_sae == 8
    finally:
        shutil.rmtree(os.path.dirname(rescued))


# ------------------------------------------------------------------------------------------- the page
@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
                                     "[click](javascript:alert(1))", "**bold** `code` | cell", "line\n# heading"])
def test_the_markdown_page_shows_data_literally(tmp_path, payload):
    context = TokenContext(("a ", payload, " b"), 1, 2.5)
    card = LatentCard(f"latent {payload}", (context,), explanation=payload)
    _, md_path = write_context_page(tmp_path / "page", {payload: [card]}, title=payload)
    markdown = md_path.read_text()
    for raw in ("<script", "<img", "](javascript", "**bold**", "`code`", "| cell", "\n# heading"):
        assert re.search(r"(?<!\\)" + re.escape(raw), markdown) is None, raw
