"""A user's artefacts (caches, SAE folders, run folders) are only ever changed by the command asked to
change them; one writer per folder; --overwrite deletes all of the earlier run or nothing."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sae_fast.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _tiny_cache(root: Path, name: str = "cache", *extra: str) -> Path:
    corpus = root / f"{name}.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 120)
    cache = root / name
    assert main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(cache), "--hook-name",
                 "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000", "--no-progress", *extra]) == 0
    return cache


def _train(cache: Path, out: Path, *extra: str, sae: str = "a=batchtopk:d_sae=16,k=2") -> int:
    return main(["train", "--cache", str(cache), "--sae", sae, "--out", str(out), "--batch-size", "128",
                 "--total-tokens", "640", "--checkpoint-every", "2", "--no-progress", "--no-recalibrate", *extra])


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """A cache, a training run with one SAE, and a snapshot of every byte of both."""
    root = tmp_path_factory.mktemp("artefacts")
    cache = _tiny_cache(root)
    run = root / "run"
    assert _train(cache, run) == 0
    return {"root": root, "cache": cache, "run": run, "sae": run / "a"}


def _snapshot(*folders: Path) -> dict:
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused_without_change(artefacts, capsys, argv: list[str], expected: str) -> None:
    before = _snapshot(artefacts["cache"], artefacts["run"])
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert expected in error and "writing there would change it" in error, error
    assert _snapshot(artefacts["cache"], artefacts["run"]) == before


@pytest.mark.parametrize("target, inside", [
    ("cache/manifest.json", "an activation cache"), ("cache/activations.bin", "an activation cache"),
    ("run/a/cfg.json", "a saved SAE folder"), ("run/train_result.json", "a training run's folder"),
    ("run/new-results.json", "a training run's folder"),
])
def test_eval_out_inside_an_artefact_is_refused(artefacts, capsys, target, inside):
    root = artefacts["root"]
    _refused_without_change(artefacts, capsys, ["eval", "--sae", str(artefacts["sae"]), "--cache",
                                                str(artefacts["cache"]), "--no-progress", "--out", str(root / target)],
                            f"is inside {root / target.split('/')[0]}" if target.count("/") == 1 else inside)


def test_eval_out_through_a_symbolic_link_is_refused(artefacts, capsys, tmp_path):
    link = tmp_path / "results.json"
    link.symlink_to(artefacts["cache"] / "manifest.json")
    _refused_without_change(artefacts, capsys, ["eval", "--sae", str(artefacts["sae"]), "--cache",
                                                str(artefacts["cache"]), "--no-progress", "--out", str(link)],
                            "an activation cache")


@pytest.mark.parametrize("command", ["meta", "stitch", "cache", "train", "train-log", "train-checkpoints"])
@pytest.mark.parametrize("target", ["cache", "run/a", "run", "cache/sub", "run/a/sub"])
def test_every_writing_command_refuses_paths_in_artefacts(artefacts, capsys, command, target):
    root, sae, cache = artefacts["root"], str(artefacts["sae"]), str(artefacts["cache"])
    out = str(root / target)
    if (command, target) in {("cache", "cache"), ("train", "run")}:
        pytest.skip("the command's own artefact: finishing a cache, or a run folder (--resume/--overwrite)")
    argv = {
        "meta": ["meta", "--sae", sae, "--out", out, "--epochs", "1"],
        "stitch": ["stitch", "--small", sae, "--large", sae, "--cache", cache, "--out", out],
        "cache": ["cache", "--model", "tiny-random", "--out", out, "--max-tokens", "64", "--seq-len", "32",
                  "--no-progress"],
        "train": ["train", "--cache", cache, "--sae", "b=topk:d_sae=8,k=2", "--out", out, "--no-progress"],
        "train-log": ["train", "--cache", cache, "--sae", "b=topk:d_sae=8,k=2", "--out", str(root / "fresh"),
                      "--log-jsonl", out + "/metrics.jsonl", "--no-progress"],
        "train-checkpoints": ["train", "--cache", cache, "--sae", "b=topk:d_sae=8,k=2", "--out",
                              str(root / "fresh"), "--checkpoint-dir", out, "--no-progress"],
    }[command]
    _refused_without_change(artefacts, capsys, argv, str(root / target.split("/")[0]))


def test_overwrite_deletes_nothing_when_any_part_cannot_go(artefacts, capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert _train(artefacts["cache"], out) == 0
    (out / "elsewhere").symlink_to(artefacts["sae"])  # an SAE folder of another run, linked into this one
    before = _snapshot(out, artefacts["run"])
    capsys.readouterr()
    assert _train(artefacts["cache"], out, "--overwrite") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert _snapshot(out, artefacts["run"]) == before and (out / "train_result.json").is_file()

    # A rename that fails part-way (here the third) puts back the ones already moved.
    (out / "elsewhere").unlink()
    before = _snapshot(out)
    real_rename, calls = os.rename, []

    def failing_rename(source, target):
        calls.append(source)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied", str(source))
        real_rename(source, target)

    monkeypatch.setattr("sae_fast.commands.outputs.os.rename", failing_rename)
    assert _train(artefacts["cache"], out, "--overwrite") == 2
    assert "Permission denied" in capsys.readouterr().err
    monkeypatch.undo()
    assert _snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".sae-fast-overwritten")]
    assert _train(artefacts["cache"], out, "--overwrite") == 0


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until killed (it loads only the lock module)."""
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('lock', sys.argv[1])\n"
            "lock = importlib.util.module_from_spec(spec); spec.loader.exec_module(lock)\n"
            "with lock.folder_lock(sys.argv[2], 'the test holder'):\n"
            "    print('locked', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "sae_fast/io/folder_lock.py"), str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("command", ["train", "train-resume", "cache", "meta"])
def test_second_writer_fails_at_once_and_a_killed_holder_leaves_no_stale_lock(artefacts, capsys, tmp_path, command):
    out = tmp_path / "out"
    if command == "train-resume":
        assert _train(artefacts["cache"], out) == 0
    argv = {
        "train": ["train", "--cache", str(artefacts["cache"]), "--sae", "a=topk:d_sae=8,k=2", "--out", str(out),
                  "--batch-size", "128", "--total-tokens", "256", "--no-progress", "--no-recalibrate"],
        "train-resume": ["train", "--cache", str(artefacts["cache"]), "--sae", "a=batchtopk:d_sae=16,k=2", "--out",
                         str(out), "--batch-size", "128", "--total-tokens", "768", "--checkpoint-every", "2",
                         "--no-progress", "--no-recalibrate", "--resume"],
        "cache": ["cache", "--model", "tiny-random", "--texts", str(artefacts["root"] / "cache.txt"), "--out", str(out),
                  "--hook-name", "blocks.1.hook_resid_post", "--seq-len", "32", "--max-tokens", "256", "--no-progress"],
        "meta": ["meta", "--sae", str(artefacts["sae"]), "--out", str(out), "--epochs", "2", "--n-meta-latents", "4",
                 "--k", "1", "--batch-size", "8"],
    }[command]
    def unlocked_files():
        return {p: b for p, b in _snapshot(out).items() if p.name != ".sae-fast.lock"} if out.exists() else {}

    before = unlocked_files()
    holder = _hold_lock(out)
    try:
        capsys.readouterr()
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert f"is being written by another process (pid {holder.pid}: the test holder)" in error
        assert unlocked_files() == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(argv) == 0  # kill -9 left no stale lock


# ---------------------------------------------------------------------------- silently wrong results
def test_resume_applies_adam_settings_and_records_them(artefacts, tmp_path, capsys):
    from sae_fast.training import load_checkpoint

    out = tmp_path / "run"
    assert _train(artefacts["cache"], out, "--lr", "1e-3") == 0
    assert main(["train", "--cache", str(artefacts["cache"]), "--sae", "a=batchtopk:d_sae=16,k=2", "--out", str(out),
                 "--batch-size", "128", "--total-tokens", "1024", "--checkpoint-every", "2", "--no-progress",
                 "--no-recalibrate", "--resume", "--lr", "5e-4", "--betas", "0.8", "0.95", "--eps", "1e-7"]) == 0
    assert "lr: 0.001 until step 5, then 0.0005" in capsys.readouterr().out
    groups = load_checkpoint(out / "checkpoints" / "checkpoint.pt")["optimizers"]["a"]["param_groups"]
    assert [(g["lr"], tuple(g["betas"]), g["eps"]) for g in groups] == [(5e-4, (0.8, 0.95), 1e-7)] * len(groups)
    result = json.loads((out / "train_result.json").read_text())
    assert result["config"]["lr"] == 5e-4
    assert {c["field"]: (c["step"], c["checkpoint"], c["now"]) for c in result["setting_changes"]} == {
        "lr": (5, 1e-3, 5e-4), "betas": (5, [0.9, 0.99], [0.8, 0.95]), "eps": (5, 1e-8, 1e-7)}


@pytest.mark.parametrize("flag, value", [("--batch-size", "64"), ("--seed", "3"), ("--dtype", "float64"),
                                         ("--micro-batches", "2"), ("--no-init-b-dec-from-data", None)])
def test_resume_refuses_a_setting_it_cannot_apply(artefacts, tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert _train(artefacts["cache"], out) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _train(artefacts["cache"], out, "--resume", "--total-tokens", "1024", flag,
                  *([value] if value else [])) == 2
    field = flag.removeprefix("--no-").removeprefix("--").replace("-", "_")
    error = capsys.readouterr().err
    assert f"--resume cannot change {field} (" in error, error
    assert {p: b for p, b in _snapshot(out).items() if p.name != ".sae-fast.lock"} == \
        {p: b for p, b in before.items() if p.name != ".sae-fast.lock"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_training_is_refused_with_the_reason(artefacts, tmp_path, capsys, dtype):
    from sae_fast.training import TrainConfig

    with pytest.raises(ValueError, match="Adam keeps its state in the parameters' dtype"):
        TrainConfig(dtype=dtype)
    assert _train(artefacts["cache"], tmp_path / "run", "--dtype", dtype) == 2
    assert f"dtype='{dtype}' cannot train correctly" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_float64_training_matches_float32(artefacts, tmp_path):
    """The dtypes training accepts reach the same fit."""
    nmse = {}
    for dtype in ("float32", "float64"):
        assert _train(artefacts["cache"], tmp_path / dtype, "--dtype", dtype, "--lr", "1e-3") == 0
        nmse[dtype] = json.loads((tmp_path / dtype / "train_result.json").read_text())["final_metrics"]["a"]["nmse"]
    assert nmse["float64"] == pytest.approx(nmse["float32"], rel=1e-3)


@pytest.fixture(scope="module")
def other_hook(artefacts):
    """A cache of the same model and width at another hook, and an SAE trained on it."""
    root = artefacts["root"]
    cache = root / "other-hook"
    assert main(["cache", "--model", "tiny-random", "--texts", str(root / "cache.txt"), "--out", str(cache),
                 "--hook-name", "blocks.0.hook_resid_post", "--seq-len", "32", "--max-tokens", "2000",
                 "--no-progress"]) == 0
    assert _train(cache, root / "other-run") == 0
    return {"cache": cache, "sae": root / "other-run" / "a"}


@pytest.mark.parametrize("command", ["eval", "recalibrate", "stitch", "stitch-large", "meta-reference"])
def test_an_sae_of_another_hook_is_refused_unless_allowed(artefacts, other_hook, tmp_path, capsys, command):
    sae, cache, other = str(artefacts["sae"]), str(artefacts["cache"]), str(other_hook["sae"])
    argv = {
        "eval": ["eval", "--sae", sae, "--cache", str(other_hook["cache"]), "--no-progress"],
        "recalibrate": ["recalibrate", "--sae", sae, "--cache", str(other_hook["cache"]), "--batches", "1"],
        "stitch": ["stitch", "--small", other, "--large", sae, "--cache", cache, "--out", str(tmp_path / "s"),
                   "--no-figures", "--max-tokens", "64"],
        "stitch-large": ["stitch", "--small", sae, "--large", sae, "--cache", str(other_hook["cache"]),
                         "--out", str(tmp_path / "s"), "--no-figures"],
        "meta-reference": ["meta", "--sae", sae, "--reference", other, "--out", str(tmp_path / "m"), "--epochs", "1"],
    }[command]
    before = _snapshot(artefacts["run"], other_hook["sae"])
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "hook 'blocks.1.hook_resid_post' vs 'blocks.0.hook_resid_post'" in error or \
        "hook 'blocks.0.hook_resid_post' vs 'blocks.1.hook_resid_post'" in error, error
    assert "--allow-other-activations" in error
    assert _snapshot(artefacts["run"], other_hook["sae"]) == before
    if command in ("eval", "recalibrate"):
        assert main([*argv, "--allow-other-activations"]) == 0
        assert "(allowed by --allow-other-activations)" in capsys.readouterr().err


def test_an_sae_that_records_no_hook_draws_a_warning(artefacts, tmp_path, capsys):
    from sae_fast.io import load_pretrained, save_pretrained

    bare = tmp_path / "bare"
    save_pretrained(load_pretrained(artefacts["sae"]), bare)
    config = json.loads((bare / "cfg.json").read_text())  # no metadata: as from a library that records none
    config["metadata"] = {key: value for key, value in config.get("metadata", {}).items()
                          if key not in ("model_name", "hook_name")}
    (bare / "cfg.json").write_text(json.dumps(config))
    assert main(["eval", "--sae", str(bare), "--cache", str(artefacts["cache"]), "--no-progress"]) == 0
    assert "does not record the model and hook it was trained on" in capsys.readouterr().err


def test_eval_warns_about_and_records_rows_the_sae_was_trained_on(artefacts, capsys):
    from sae_fast.activations import ActivationCacheReader

    root = artefacts["root"]
    assert main(["cache", "--model", "tiny-random", "--texts", str(root / "cache.txt"), "--out",
                 str(root / "half-heldout"), "--hook-name", "blocks.1.hook_resid_post", "--seq-len", "32",
                 "--max-tokens", "2000", "--no-progress", "--heldout-fraction", "0.5"]) == 0
    trained = ActivationCacheReader(artefacts["cache"], split="train")
    heldout = ActivationCacheReader(root / "half-heldout", split="heldout")
    assert heldout.fingerprint == trained.fingerprint  # the same content, split elsewhere
    expected = trained.num_rows - heldout.first_sequence * heldout.manifest["rows_per_sequence"]
    assert expected > 0
    out = root / "overlap.json"
    capsys.readouterr()
    for split, cache, rows in (("heldout", root / "half-heldout", expected), ("heldout", artefacts["cache"], 0),
                               ("train", artefacts["cache"], trained.num_rows)):
        assert main(["eval", "--sae", str(artefacts["sae"]), "--cache", str(cache), "--split", split,
                     "--no-progress", "--out", str(out)]) == 0
        assert json.loads(out.read_text())[str(artefacts["sae"])]["training_rows_evaluated"] == rows
        error = capsys.readouterr().err
        assert (f"was trained on {rows} of the" in error) == (rows > 0), error


@pytest.mark.parametrize("edit", [{"dtype": "int8", "d_model": 2}, {"dtype": "uint16"}, {"dtype": "float64"},
                                  {"d_model": -64}, {"d_model": True}, {"rows_per_sequence": 0}])
def test_a_manifest_that_reinterprets_the_data_is_refused(artefacts, tmp_path, edit):
    import shutil

    from sae_fast.activations import ActivationCacheReader

    cache = tmp_path / "cache"
    shutil.copytree(artefacts["cache"], cache)
    manifest = json.loads((cache / "manifest.json").read_text())
    if "d_model" in edit and edit.get("dtype") == "int8":
        edit = {**edit, "d_model": manifest["d_model"] * 2}  # int8 rows of twice the width: the same bytes
    (cache / "manifest.json").write_text(json.dumps({**manifest, **edit}))
    with pytest.raises(ValueError, match="the manifest is corrupt or edited"):
        ActivationCacheReader(cache)


# ---------------------------------------------------------------------------- counts
REQUIRED = {"cache": ["--out", "o"], "train": ["--cache", "c", "--sae", "a=topk:d_sae=8,k=2", "--out", "o"],
            "eval": ["--sae", "s", "--cache", "c"], "recalibrate": ["--sae", "s", "--cache", "c"],
            "stitch": ["--small", "s", "--large", "l", "--cache", "c", "--out", "o"], "meta": ["--sae", "s", "--out", "o"]}


def _int_flags():
    """``(command, flag, lower bound)`` of every integer flag of every subcommand."""
    import argparse

    from sae_fast.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, sub in commands.choices.items():
        for action in sub._actions:
            name = getattr(action.type, "__name__", "")
            assert action.type is not int, f"{command} {action.option_strings[0]} parses ints without a bound"
            if name.startswith("int >= "):
                found.append((command, action.option_strings[0], int(name.removeprefix("int >= "))))
    return found


def test_the_sweep_sees_every_command_and_the_reported_flags():
    flags = {(command, flag) for command, flag, _ in _int_flags()}
    assert {command for command, _ in flags} == set(REQUIRED)
    assert {("eval", "--max-rows"), ("eval", "--ce-sequences"), ("cache", "--max-tokens"), ("meta", "--examples"),
            ("meta", "--n-meta-latents"), ("train", "--batch-size"), ("stitch", "--max-tokens")} <= flags


@pytest.mark.parametrize("command, flag, lower", _int_flags())
def test_every_int_flag_refuses_a_negative_count_at_parse_time(command, flag, lower, capsys):
    from sae_fast.cli import parse_args

    for value in ("-1", "-3", str(lower - 1)) if lower > 0 else ("-1", "-3"):
        with pytest.raises(SystemExit) as exit_info:
            parse_args([command, *REQUIRED[command], flag, value])
        assert exit_info.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err
    parse_args([command, *REQUIRED[command], flag, str(max(lower, 1))])


@pytest.mark.parametrize("argv, message", [
    (["meta", "--n-meta-latents", "0"], "MetaSAEConfig.n_meta_latents must be >= 1"),
    (["meta", "--k", "100"], "--k 100 is above the width d_in="),
    (["train", "--seq-len", "1"], "seq_len"), (["train", "--log-every", "0"], "TrainConfig.log_every"),
    (["train", "--micro-batches", "0"], "TrainConfig.micro_batches"),
    (["cache", "--max-tokens", "0"], "max_tokens"),
])
def test_a_zero_or_too_large_count_is_refused_before_work(artefacts, tmp_path, capsys, argv, message):
    command, *flags = argv
    where = {"meta": ["--sae", str(artefacts["sae"]), "--out", str(tmp_path / "o")],
             "train": ["--live", "--model", "tiny-random", "--sae", "a=topk:d_sae=8,k=2", "--out", str(tmp_path / "o")],
             "cache": ["--model", "tiny-random", "--out", str(tmp_path / "o")]}[command]
    if command == "train" and flags[0] == "--seq-len":
        flags = ["--act-seq-len", "1"]
    assert main([command, *where, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "train_result.json").exists() and not (tmp_path / "o" / "meta_sae.json").exists()


def test_config_dataclasses_refuse_negative_counts():
    import dataclasses

    from sae_fast.activations import ActivationConfig
    from sae_fast.evaluation import EvalConfig
    from sae_fast.meta import MetaSAEConfig
    from sae_fast.stitching import StitchingConfig
    from sae_fast.training import TrainConfig

    checked = []
    for cls in (ActivationConfig, TrainConfig, EvalConfig, MetaSAEConfig, StitchingConfig):
        for f in dataclasses.fields(cls):
            if f.type in ("int", "int | None", int):
                with pytest.raises((ValueError, TypeError)):
                    cls(**{f.name: -1})
                checked.append(f"{cls.__name__}.{f.name}")
    assert {"TrainConfig.seed", "StitchingConfig.seed", "MetaSAEConfig.k", "ActivationConfig.max_tokens"} <= set(checked)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "examples").glob("*.py")
                                          if "--out" in p.read_text()))
def test_example_scripts_refuse_an_out_inside_an_artefact(artefacts, monkeypatch, script):
    import re
    import runpy

    source = (ROOT / "examples" / script).read_text()
    required = [flag for flag in re.findall(r'add_argument\("(--[\w-]+)"[^\n]*required=True', source)
                if flag != "--out"]
    argv = [script, *(x for flag in required for x in (flag, str(artefacts["sae"]))),
            "--out", str(artefacts["cache"] / "results")]
    monkeypatch.setattr("sys.argv", argv)
    before = _snapshot(artefacts["cache"])
    with pytest.raises(ValueError, match="writing there would change it"):
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    assert _snapshot(artefacts["cache"]) == before


@pytest.mark.parametrize("target, expected", [
    ("cache", "is an activation cache"), ("run/a", "is a saved SAE folder"), ("run", "a `sae-fast train` run's folder"),
    ("cache/demo", "is inside"),
])
def test_the_demo_refuses_an_out_that_is_another_artefact(artefacts, capsys, target, expected):
    from sae_fast import demo

    before = _snapshot(artefacts["cache"], artefacts["run"])
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--out", str(artefacts["root"] / target)])
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err
    assert _snapshot(artefacts["cache"], artefacts["run"]) == before


def test_a_second_demo_in_one_folder_fails_at_once(tmp_path, capsys):
    from sae_fast import demo
    from sae_fast.io.folder_lock import FolderBusyError

    holder = _hold_lock(tmp_path / "demo")
    try:
        with pytest.raises(FolderBusyError, match="another process"):
            demo.main(["--out", str(tmp_path / "demo")])
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("flag, value", [("--train-tokens", "-1"), ("--k", "0"), ("--epochs", "0"), ("--lr", "inf")])
def test_the_demo_range_checks_its_numbers(capsys, flag, value):
    from sae_fast import demo

    with pytest.raises(SystemExit) as exit_info:
        demo.main([flag, value])
    assert exit_info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
