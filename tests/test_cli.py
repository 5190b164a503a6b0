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
        if f.name not in ("batch_size", "max_tokens", "cache_dtype"):
            assert "--act-" + f.name.replace("_", "-") in text, f.name
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
    assert main(["eval", "--sae", str(out / "b"), "--cache", str(cache), "--ce-sequences", "4", "--model",
                 "tiny-random", "--no-progress", "--out", str(results_path)]) == 0
    results = json.loads(results_path.read_text())[str(out / "b")]
    assert results["ce_sequences"] == 4 and results["n_tokens"] > 0 and 0 <= results["dead_fraction"] <= 1
    assert "NMSE=" in capsys.readouterr().out


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    code = main(["train", "--cache", str(tmp_path / "missing"), "--sae", "a=topk:d_sae=8,k=2", "--out",
                 str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    assert "sae-fast train: error:" in capsys.readouterr().err
