"""sae-fast CLI: --help of every command, flags map onto the config dataclasses, a tiny cache/train/eval run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sae_fast.activations import ActivationConfig
from sae_fast.cli import build_parser, main, parse_sae_spec
from sae_fast.io import load_pretrained
from sae_fast.training import TrainConfig, load_checkpoint


@pytest.mark.parametrize("command", ["cache", "train", "eval"])
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: sae-fast" in text


def test_train_flags_are_one_to_one_with_train_config(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        if f.name != "extra":
            assert "--" + f.name.replace("_", "-") in text, f.name
    for f in dataclasses.fields(ActivationConfig):
        if f.name not in ("batch_size", "max_tokens", "cache_dtype", "heldout_fraction", "max_norm_ratio"):
            assert "--act-" + f.name.replace("_", "-") in text, f.name
    assert "--max-norm-ratio" in text  # one flag for --cache and --live
    assert "Adam learning rate" in text  # the field documentation is the help text
    args = build_parser().parse_args(["train", "--cache", "c", "--sae", "a=topk:d_sae=8,k=2", "--out", "o",
                                      "--lr", "1e-3", "--betas", "0.8", "0.9", "--no-progress", "--total-tokens", "none"])
    assert (args.lr, args.betas, args.progress, args.total_tokens) == (1e-3, [0.8, 0.9], False, None)


def test_sae_spec_parsing():
    assert parse_sae_spec("btk=batchtopk:d_sae=4096,k=32,aux_coefficient=0.03") == (
        "btk", {"architecture": "batchtopk", "d_sae": 4096, "k": 32, "aux_coefficient": 0.03})
    with pytest.raises(ValueError, match="NAME=ARCH"):
        parse_sae_spec("batchtopk")


def test_tiny_cache_train_resume_eval(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 120)
    cache, out = tmp_path / "cache", tmp_path / "run"
    assert main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(cache),
                 "--hook-name", "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000",
                 "--no-progress"]) == 0
    train = ["train", "--cache", str(cache), "--sae", "b=batchtopk:d_sae=48,k=4", "--sae", "t=topk:d_sae=48,k=4",
             "--out", str(out), "--batch-size", "128", "--checkpoint-every", "5", "--log-every", "2",
             "--no-progress", "--lr", "1e-3"]
    assert main([*train, "--total-tokens", "1280"]) == 0
    summary = json.loads((out / "train_result.json").read_text())
    assert summary["steps"] == 10 and set(summary["final_metrics"]) == {"b", "t"}
    assert load_checkpoint(out / "checkpoints" / "checkpoint.pt")["step"] == 10
    assert (out / "metrics.jsonl").read_text().count('"sae": "b"') == 6  # steps 1, 2, 4, 6, 8, 10
    sae = load_pretrained(out / "b")
    assert sae.architecture == "batchtopk" and sae.d_sae == 48 and float(sae.threshold) > 0

    # --resume with a larger budget continues from step 10.
    assert main([*train, "--total-tokens", "1920", "--resume"]) == 0
    assert json.loads((out / "train_result.json").read_text())["steps"] == 15

    results_path = tmp_path / "eval.json"
    assert main(["eval", "--sae", str(out / "b"), "--cache", str(cache), "--ce-sequences", "2", "--model",
                 "tiny-random", "--no-progress", "--out", str(results_path)]) == 0
    results = json.loads(results_path.read_text())[str(out / "b")]
    assert results["ce_sequences"] == 2 and results["n_tokens"] > 0 and 0 <= results["dead_fraction"] <= 1
    assert "NMSE=" in capsys.readouterr().out


def _tiny_cache(tmp_path, name: str, text: str, *extra: str) -> str:
    corpus = tmp_path / f"{name}.txt"
    corpus.write_text(text * 120)
    cache = tmp_path / name
    assert main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(cache), "--hook-name",
                 "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000", "--no-progress", *extra]) == 0
    return str(cache)


def test_train_sees_only_training_rows_and_resume_refuses_another_cache(tmp_path, capsys):
    cache = _tiny_cache(tmp_path, "a", "Sparse autoencoders decompose activations into features. ", "--seed", "1")
    assert "--seed 1 does not change which text" in capsys.readouterr().err
    other = _tiny_cache(tmp_path, "b", "A different corpus gives different activations entirely. ")
    out = tmp_path / "run"
    train = ["train", "--sae", "t=topk:d_sae=48,k=4", "--out", str(out), "--batch-size", "128", "--no-progress",
             "--checkpoint-every", "5", "--max-norm-ratio", "50"]
    assert main([*train, "--cache", cache, "--total-tokens", "640"]) == 0
    metadata = load_checkpoint(out / "checkpoints" / "checkpoint.pt")["data_identity"]
    assert metadata["split"] == "train" and metadata["count"] == 62 * 31 and metadata["max_norm_ratio"] == 50
    assert main([*train, "--cache", other, "--total-tokens", "1280", "--resume"]) == 2
    error = capsys.readouterr().err
    assert "trained on different data (fingerprint: checkpoint 'sha256:" in error
    assert main([*train, "--cache", cache, "--total-tokens", "1280", "--resume", "--max-norm-ratio", "40"]) == 2
    assert "max_norm_ratio: checkpoint 50.0, now 40.0" in capsys.readouterr().err

    # eval: held-out rows by default, the cache's own model (no --model), a warning on training rows
    results_path = tmp_path / "eval.json"
    assert main(["eval", "--sae", str(out / "t"), "--cache", cache, "--ce-sequences", "1", "--no-progress",
                 "--out", str(results_path)]) == 0
    results = json.loads(results_path.read_text())[str(out / "t")]
    assert results["split"] == "heldout" and results["n_tokens"] == 3 * 31 and results["ce_sequences"] == 1
    assert "warning" not in capsys.readouterr().err
    assert main(["eval", "--sae", str(out / "t"), "--cache", cache, "--split", "train", "--no-progress"]) == 0
    assert "evaluates on training rows" in capsys.readouterr().err


def test_eval_of_a_cache_without_heldout_split_warns(tmp_path, capsys):
    cache = _tiny_cache(tmp_path, "a", "Sparse autoencoders decompose activations into features. ",
                        "--heldout-fraction", "0")
    out = tmp_path / "run"
    assert main(["train", "--cache", cache, "--sae", "t=topk:d_sae=48,k=4", "--out", str(out), "--batch-size",
                 "128", "--no-progress", "--total-tokens", "256"]) == 0
    capsys.readouterr()
    assert main(["eval", "--sae", str(out / "t"), "--cache", cache, "--no-progress"]) == 0
    assert "has no held-out split" in capsys.readouterr().err


def test_full_disk_during_cache_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import errno
    import os

    import sae_fast.activations.cache_writer as cache_writer

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_writer.os, "posix_fallocate", no_space)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 120)
    code = main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(tmp_path / "c"),
                 "--hook-name", "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000", "--no-progress"])
    assert code == 2
    assert "sae-fast cache: error: no space left on the device" in capsys.readouterr().err
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    code = main(["train", "--cache", str(tmp_path / "missing"), "--sae", "a=topk:d_sae=8,k=2", "--out",
                 str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    assert "sae-fast train: error:" in capsys.readouterr().err
