"""sae-fast CLI: --help of every command, flags map onto the config dataclasses, a tiny cache/train/eval run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sae_fast.activations import ActivationCacheReader, ActivationConfig
from sae_fast.cli import build_parser, build_saes, dataclass_from_args, main, parse_args, parse_sae_spec
from sae_fast.config_fields import field_help
from sae_fast.evaluation import EvalConfig
from sae_fast.io import load_pretrained
from sae_fast.meta import MetaSAEConfig
from sae_fast.meta.config import PAPER_META_BATCH_SIZE, PAPER_META_EPOCHS
from sae_fast.reproduce.config import ReproduceConfig
from sae_fast.stitching import StitchingConfig
from sae_fast.synthetic import CompositionalConfig, SyntheticBenchmarkConfig
from sae_fast.training import TrainConfig, load_checkpoint


@pytest.mark.parametrize("command", ["cache", "train", "eval", "recalibrate", "stitch", "meta"])
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


CONFIGS = [TrainConfig, ActivationConfig, MetaSAEConfig, StitchingConfig, ReproduceConfig, SyntheticBenchmarkConfig,
           CompositionalConfig, EvalConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_every_config_field_is_documented(cls):
    undocumented = [name for name, text in field_help(cls).items() if not text]
    assert undocumented == [], f"{cls.__name__} fields without documented(..., help): {undocumented}"


def test_meta_flags_build_the_nested_train_config(capsys):
    with pytest.raises(SystemExit):
        main(["meta", "--help"])
    text = capsys.readouterr().out
    assert "MetaSAEConfig.train: a TrainConfig" in text and "decoder rows per step" in text
    assert "--total-tokens" not in text and "--resume" not in text  # set by the workflow, not flags
    args = build_parser().parse_args(["meta", "--sae", "s", "--out", "o", "--lr", "0.01", "--k", "2", "--no-progress",
                                      "--betas", "0.8", "0.9"])
    config = dataclass_from_args(MetaSAEConfig, args, n_meta_latents=8)
    assert (config.n_meta_latents, config.k, config.epochs) == (8, 2, PAPER_META_EPOCHS)
    assert (config.train.lr, config.train.betas, config.train.progress) == (0.01, (0.8, 0.9), False)
    # the fields without flags keep the meta-SAE's defaults, not TrainConfig's
    assert config.train.total_tokens is None and config.train.batch_size == PAPER_META_BATCH_SIZE


def test_sae_spec_parsing():
    assert parse_sae_spec("btk=batchtopk:d_sae=4096,k=32,aux_coefficient=0.03") == (
        "btk", {"architecture": "batchtopk", "d_sae": 4096, "k": 32, "aux_coefficient": 0.03})
    with pytest.raises(ValueError, match="NAME=ARCH"):
        parse_sae_spec("batchtopk")


def _tiny_cache(tmp_path, name: str = "cache", text: str = "Sparse autoencoders decompose activations into features. ",
                *extra: str) -> str:
    """A 2000-token cache of the tiny random model, extracted from ``text`` repeated."""
    corpus = tmp_path / f"{name}.txt"
    corpus.write_text(text * 120)
    cache = tmp_path / name
    assert main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(cache), "--hook-name",
                 "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000", "--no-progress", *extra]) == 0
    return str(cache)


def test_tiny_cache_train_resume_eval(tmp_path, capsys):
    cache, out = Path(_tiny_cache(tmp_path)), tmp_path / "run"
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
    assert "has no held-out split (it was extracted with heldout_fraction 0.0)" in capsys.readouterr().err


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


# ---------------------------------------------------------------------------- run folders, θ, stitch, meta
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cache and one run of a 16- and a 48-latent BatchTopK SAE on it (θ recalibrated by default)."""
    root = tmp_path_factory.mktemp("cli")
    cache, out = Path(_tiny_cache(root)), root / "run"
    train = ["train", "--cache", str(cache), "--sae", "small=batchtopk:d_sae=16,k=4",
             "--sae", "large=batchtopk:d_sae=48,k=4", "--out", str(out), "--batch-size", "128",
             "--checkpoint-every", "5", "--no-progress", "--lr", "1e-3", "--recalibrate-batches", "4"]
    assert main([*train, "--total-tokens", "1280"]) == 0
    return {"cache": cache, "out": out, "train": train}


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_refuses_another_runs_folder_and_overwrite_clears_it(trained, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--cache", str(trained["cache"]), "--out", str(out), "--batch-size", "128",
              "--no-progress", "--total-tokens", "640", "--no-recalibrate"]
    assert main([*common, "--sae", "old=topk:d_sae=16,k=2"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*common, "--sae", "new=topk:d_sae=16,k=2"]) == 2
    error = capsys.readouterr().err
    assert "holds another run" in error and "--resume" in error and "--overwrite" in error
    assert _snapshot(out) == before  # refused before anything was written
    assert main([*common, "--sae", "new=topk:d_sae=16,k=2", "--resume", "--overwrite"]) == 2

    assert main([*common, "--sae", "new=topk:d_sae=16,k=2", "--overwrite"]) == 0
    assert not (out / "old").exists()  # the earlier run's SAE would have looked like a result of this one
    assert json.loads((out / "train_result.json").read_text())["saes"] == {"new": str(out / "new")}
    assert (out / "metrics.jsonl").read_text().count('"step": 1,') == 1  # a fresh log, not appended to


@pytest.mark.parametrize("kind", ["cache", "sae"])
def test_train_refuses_a_cache_or_sae_folder_as_out(trained, kind, capsys):
    target = trained["cache"] if kind == "cache" else trained["out"] / "small"
    before = _snapshot(target)
    code = main(["train", "--cache", str(trained["cache"]), "--sae", "a=topk:d_sae=8,k=2", "--out", str(target),
                 "--no-progress", "--total-tokens", "128", "--batch-size", "128"])
    assert code == 2
    assert ("activation cache" if kind == "cache" else "saved SAE folder") in capsys.readouterr().err
    assert _snapshot(target) == before


def test_unwritable_out_is_one_line_before_training(trained, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["train", "--cache", str(trained["cache"]), "--sae", "a=topk:d_sae=8,k=2",
                 "--out", str(blocker / "run"), "--no-progress", "--total-tokens", "128", "--batch-size", "128"])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker / "run") in err and "Traceback" not in err and len(err.splitlines()) == 1

    # Root ignores permissions, so a read-only folder is simulated where the probe writes.
    import sae_fast.commands.outputs as outputs

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    code = main(["train", "--cache", str(trained["cache"]), "--sae", "a=topk:d_sae=8,k=2",
                 "--out", str(tmp_path / "ro"), "--no-progress", "--total-tokens", "128", "--batch-size", "128"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write {tmp_path / 'ro'}: Permission denied" in err and "--out" in err


def test_train_recipe_paper_fills_train_config_and_sae_arguments(trained, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--cache", str(trained["cache"]), "--out", str(out), "--recipe", "paper",
                 "--sae", "b=batchtopk:d_sae=16,k=2", "--sae", "r=relu:d_sae=16,l1_coefficient=0.001",
                 "--sae", "t=topk:d_sae=16,k=2,normalize_activations=none,aux_k=8,dead_tokens_threshold=7",
                 "--batch-size", "128", "--total-tokens", "256", "--no-progress", "--no-recalibrate"]) == 0
    batchtopk, relu, topk = (load_pretrained(out / name) for name in ("b", "r", "t"))
    assert (batchtopk.normalize_activations, batchtopk.dead_tokens_threshold) == ("layer_norm", 5 * 128)
    assert (batchtopk.aux_k, batchtopk.aux_coefficient) == (512, 1 / 32)
    assert (relu.normalize_activations, relu.dead_tokens_threshold) == ("layer_norm", 5 * 128)
    assert (topk.normalize_activations, topk.aux_k, topk.dead_tokens_threshold) == ("none", 8, 7)  # spec keys win
    summary = json.loads((out / "train_result.json").read_text())
    assert summary["recipe"] == summary["config"]["extra"]["recipe"] == "paper"
    assert summary["config"]["batch_size"] == 128
    assert json.loads((out / "b" / "cfg.json").read_text())["metadata"]["recipe"] == "paper"


def test_recipe_values_are_defaults_that_explicit_flags_override(monkeypatch, capsys):
    from sae_fast.training import PAPER, RECIPES, Recipe

    # PAPER's optimiser settings equal TrainConfig's defaults, so a recipe that differs shows where values come from.
    monkeypatch.setitem(RECIPES, "test", Recipe("test", "a test recipe", train={"lr": 1e-2, "batch_size": 64}))
    base = ["train", "--cache", "c", "--sae", "a=topk:d_sae=8,k=2", "--out", "o"]
    args = parse_args([*base, "--recipe", "test"])
    assert (args.recipe, args.lr, args.batch_size) == ("test", 1e-2, 64)
    config = dataclass_from_args(TrainConfig, args)
    assert (config.lr, config.batch_size) == (1e-2, 64)
    args = parse_args([*base, "--lr", "3e-4", "--recip", "test"])  # explicit, even at sae_fast's default value
    assert (args.lr, args.batch_size) == (3e-4, 64)
    args = parse_args(base)
    assert (args.recipe, args.lr, args.batch_size) == ("none", TrainConfig.lr, TrainConfig.batch_size)

    saes = build_saes(["a=topk:d_sae=8,k=2", "b=jumprelu:d_sae=8,normalize_activations=none"], d_in=4, seed=0,
                      recipe=PAPER, batch_size=64)
    assert (saes["a"].normalize_activations, saes["a"].dead_tokens_threshold) == ("layer_norm", 320)
    assert saes["b"].normalize_activations == "none"
    assert build_saes(["a=topk:d_sae=8,k=2"], d_in=4, seed=0)["a"].normalize_activations == "none"

    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--recipe", "gpt4"])
    assert exit_info.value.code == 2
    assert "argument --recipe: invalid choice: 'gpt4'" in capsys.readouterr().err


def test_gpt2_example_help_works_offline(monkeypatch, capsys):
    import runpy

    script = Path(__file__).parents[1] / "examples" / "train_gpt2_openwebtext.py"
    monkeypatch.setattr("sys.argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--device" in text and "blocks.8.hook_resid_pre" in text


def test_train_recalibrates_theta_and_recalibrate_command(trained, capsys):
    out = trained["out"]
    thetas = json.loads((out / "train_result.json").read_text())["theta_recalibration"]
    assert set(thetas) == {"small", "large"}
    for change in thetas.values():
        assert change["new_theta"] > 0 and change["batches"] == 4 and change["batch_size"] == 128
        assert abs(change["new_l0"] - 4) <= abs(change["old_l0"] - 4) + 0.5
    assert float(load_pretrained(out / "large").threshold) == pytest.approx(thetas["large"]["new_theta"])

    capsys.readouterr()
    assert main(["recalibrate", "--sae", str(out / "large"), "--cache", str(trained["cache"]), "--batches", "2"]) == 0
    printed = capsys.readouterr().out
    assert "θ" in printed and "eval L0" in printed
    cfg = json.loads((out / "large" / "cfg.json").read_text())["metadata"]
    assert cfg["theta_recalibration"]["batches"] == 2 and cfg["train_batch_size"] == 128
    assert float(load_pretrained(out / "large").threshold) == pytest.approx(cfg["theta_recalibration"]["new_theta"])


def test_stitch_command(trained, tmp_path, capsys):
    out = tmp_path / "stitch"
    assert main(["stitch", "--small", str(trained["out"] / "small"), "--large", str(trained["out"] / "large"),
                 "--cache", str(trained["cache"]), "--out", str(out), "--max-tokens", "512", "--threshold", "0.3"]) == 0
    record = json.loads((out / "stitch.json").read_text())
    c = record["classification"]
    assert c["n_large_latents"] == 48 and c["n_novel"] + c["n_reconstruction"] == 48 and c["threshold"] == 0.3
    added = record["adding_novel_latents"]
    assert added["mse_change"] == pytest.approx(added["mse_after"] - added["small_mse"])
    heldout = ActivationCacheReader(trained["cache"], split="heldout").num_rows  # stitch reads the held-out split
    assert record["interpolation"]["steps"] >= c["n_novel"] and record["n_tokens"] == min(512, heldout)
    assert all((out / name).is_file() for name in ("fig5_interpolation.png", "fig10_max_cos_histogram.json"))
    assert "novel at θ = 0.3" in capsys.readouterr().out
    assert main(["stitch", "--small", str(trained["out"] / "large"), "--large", str(trained["out"] / "small"),
                 "--cache", str(trained["cache"]), "--out", str(out), "--no-figures"]) == 2


def test_stitching_scripts_read_a_cache_folder(trained, tmp_path, monkeypatch):
    import runpy
    from pathlib import Path

    from sae_fast.commands.inputs import load_activations

    cache = trained["cache"]
    rows = load_activations(cache, 50)  # from the held-out split by default
    assert rows.shape[0] == 50
    assert load_activations(cache / "activations.bin", 50).equal(rows)
    with pytest.raises(ValueError, match="saved SAE folder"):
        load_activations(trained["out"] / "small")
    script = Path(__file__).parents[1] / "examples" / "stitching_fig14_novel_latent_mse.py"
    monkeypatch.setattr("sys.argv", [str(script), "--small", str(trained["out"] / "small"), "--large",
                                     str(trained["out"] / "large"), "--cache", str(cache), "--max-tokens", "256",
                                     "--threshold", "0.3", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "fig14_novel_latent_mse.json").is_file()


def test_meta_command(trained, tmp_path, capsys):
    out = tmp_path / "meta"
    assert main(["meta", "--sae", str(trained["out"] / "large"), "--out", str(out), "--n-meta-latents", "8",
                 "--k", "2", "--epochs", "3", "--no-progress", "--reference", str(trained["out"] / "small"),
                 "--examples", "3"]) == 0
    report = json.loads((out / "meta_sae.json").read_text())
    assert report["fit"]["n_latents"] == 48 and report["fit"]["n_meta_latents"] == 8
    assert len(report["decompositions"]) == 3 and "small" in report["max_cos_vs_references"]
    meta_sae = load_pretrained(out / "meta_sae")
    assert meta_sae.d_sae == 8 and meta_sae.k == 2
    assert "meta-latents" in capsys.readouterr().out


def test_help_texts_are_plain_and_truthful(capsys):
    for command in ("cache", "train", "eval", "recalibrate", "stitch", "meta"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text and ":class:" not in text, command
        if command == "meta":
            assert "{auto,torch,cpp,triton}" in text and "dense" not in text.split("--backend {")[1].split("\n")[0]
        if command == "train":
            assert "<--out>/checkpoints" in text
