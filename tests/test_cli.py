"""sae-fast CLI: --help of every command, flags map onto the config dataclasses, a tiny cache/train/eval run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sae_fast.activations import ActivationConfig
from sae_fast.cli import build_parser, main, parse_sae_spec
from sae_fast.io import load_pretrained
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


def _tiny_cache(folder):
    """A 2000-token cache of the tiny random model under ``folder``."""
    corpus = folder / "corpus.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 120)
    cache = folder / "cache"
    assert main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(cache),
                 "--hook-name", "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000",
                 "--no-progress"]) == 0
    return cache


def test_tiny_cache_train_resume_eval(tmp_path, capsys):
    cache, out = _tiny_cache(tmp_path), tmp_path / "run"
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


# ---------------------------------------------------------------------------- run folders, θ, stitch, meta
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cache and one run of a 16- and a 48-latent BatchTopK SAE on it (θ recalibrated by default)."""
    root = tmp_path_factory.mktemp("cli")
    cache, out = _tiny_cache(root), root / "run"
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
    assert record["interpolation"]["steps"] >= c["n_novel"] and record["n_tokens"] == 512
    assert all((out / name).is_file() for name in ("fig5_interpolation.png", "fig10_max_cos_histogram.json"))
    assert "novel at θ = 0.3" in capsys.readouterr().out
    assert main(["stitch", "--small", str(trained["out"] / "large"), "--large", str(trained["out"] / "small"),
                 "--cache", str(trained["cache"]), "--out", str(out), "--no-figures"]) == 2


def test_stitching_scripts_read_a_cache_folder(trained, tmp_path, monkeypatch):
    import runpy
    from pathlib import Path

    from sae_fast.commands.inputs import load_activations

    cache = trained["cache"]
    rows = load_activations(cache, 100)
    assert rows.shape[0] == 100
    assert load_activations(cache / "activations.bin", 100).equal(rows)
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
