"""`make reproduce` on a tiny random model: every stage runs, resumes, and writes a valid claims.json."""

from __future__ import annotations

import json

import pytest

from sae_fast.activations import ActivationCacheReader
from sae_fast.io import load_pretrained
from sae_fast.reproduce import ReproduceConfig, run_reproduction
from sae_fast.reproduce.claims import check_claims_format
from sae_fast.reproduce.pipeline import main


def tiny_config(out, milestones=(8, 16)):
    return ReproduceConfig(
        out=str(out), model="tiny-random", hook_name="blocks.1.hook_resid_post", seq_len=32, train_tokens=3000,
        heldout_tokens=600, eval_tokens=600, k=4, small=24, medium=48, large=96, batch_size=128,
        milestones=milestones, meta_epochs=20, ce_sequences=2, progress=False, distinct_rows=1024,
    )


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    report = run_reproduction(tiny_config(out))
    return out, report


def test_claims_json_format_and_files(reproduced):
    out, report = reproduced
    document = json.loads((out / "claims.json").read_text())
    check_claims_format(document)
    claims = document["claims"]
    for name in ("novel_fraction", "same_size_reconstruction_fraction", "add_novel_mse_change",
                 "r_squared_activation_vs_decoder", "meta_sae_fve", "batchtopk_vs_topk_nmse"):
        assert set(claims[name]) >= {"paper", "measured", "holds"}
    novel = claims["novel_fraction"]
    assert load_pretrained(out / novel["small"]).d_sae == 24 and load_pretrained(out / novel["large"]).d_sae == 48
    assert novel["threshold"] == 0.7
    same = claims["same_size_reconstruction_fraction"]
    assert load_pretrained(out / same["a"]).d_sae == load_pretrained(out / same["b"]).d_sae == 24
    heldout = ActivationCacheReader(out / document["heldout_cache"], split="heldout")
    assert heldout.num_rows == document["data"]["heldout_rows"] > 0
    assert set(document["convergence"]) == {"8", "16"}
    text = report.read_text()
    assert "| claim | paper | ours | target | holds |" in text and "step 16" in text
    assert (out / "convergence.png").is_file() and (out / "stitching" / "fig19_reconstruction_fraction.png").is_file()
    assert (out / "meta" / "meta_sae" / "cfg.json").is_file()
    # The paper's recipe: every SAE normalises its inputs per token.
    assert load_pretrained(out / novel["large"]).normalize_activations == "layer_norm"


def test_the_stitching_claims_use_the_relu_family_and_batchtopk_has_its_own(reproduced):
    out, report = reproduced
    document = json.loads((out / "claims.json").read_text())
    claims = document["claims"]
    for name in ("novel_fraction", "same_size_reconstruction_fraction", "add_novel_mse_change", "meta_sae_fve"):
        assert claims[name]["family"] == "relu"
    small = load_pretrained(out / claims["novel_fraction"]["small"])
    assert small.architecture == "relu" and small.target_l0 == 35.2 and small.l1_coefficient != 1e-3
    assert load_pretrained(out / claims["same_size_reconstruction_fraction"]["a"]).architecture == "relu"
    btk = document["batchtopk_family"]
    assert btk["claims"]["novel_fraction"]["family"] == "batchtopk"
    assert load_pretrained(out / btk["claims"]["novel_fraction"]["large"]).architecture == "batchtopk"
    assert set(btk["convergence"]) == set(document["convergence"]) == {"8", "16"}
    assert set(document["convergence"]["16"]) == set(btk["convergence"]["16"]) >= {"heldout_l0_large"}
    assert set(claims["relu_heldout_l0"]["measured"]) == {"24", "48", "96"}
    assert set(document["l1_coefficients"]) == {"relu_24_s0", "relu_24_s1", "relu_48_s0", "relu_48_s1", "relu_96_s0"}
    # The JumpReLU sweep: both penalties measured, the nearer-to-k one compared with BatchTopK.
    assert set(claims["jumprelu_at_k"]["measured"]) == {"0.0018", "0.0004"}
    assert set(claims["batchtopk_vs_jumprelu_nmse"]["measured"]["jumprelu_sweep"]) == {"0.0018", "0.0004"}
    assert "relu_48_s0" in document["architectures"]
    study = document["distinct_tokens"]
    assert study["distinct_rows"] == {"subset": 1024, "full": document["data"]["train_rows"]}
    assert set(study["subset"]) == set(study["full"]) >= {"novel_fraction", "add_novel_mse_change"}
    assert (out / "saes" / "distinct1024_step000008" / "relu_48_s0" / "cfg.json").is_file()
    assert (out / "stitching_batchtopk" / "fig19_reconstruction_fraction.png").is_file()
    text = report.read_text()
    assert "## The stitching claims on both families" in text and "## Distinct tokens at a fixed step budget" in text


def test_a_snapshot_of_an_earlier_version_is_refused_by_name(reproduced, tmp_path):
    import shutil

    out, _ = reproduced
    copy = tmp_path / "old"
    shutil.copytree(out / "saes" / "step000008", copy / "saes" / "step000008")
    shutil.copytree(out / "cache", copy / "cache")
    shutil.rmtree(copy / "saes" / "step000008" / "relu_24_s0")  # as a BatchTopK-only run left it
    with pytest.raises(ValueError, match=r"relu_24_s0.*another --out"):
        run_reproduction(tiny_config(copy, milestones=(8,)))


def test_jumprelu_is_read_off_its_sweep_at_batchtopks_l0():
    from sae_fast.reproduce.claims import interpolate_at_l0

    # NMSE falling as a power of L0: log-log interpolation is exact there.
    points = [(10.0, 0.02), (40.0, 0.02 * 4 ** -0.5)]
    assert interpolate_at_l0(points, 20.0, log_scale=True) == pytest.approx(0.02 * 2 ** -0.5)
    assert interpolate_at_l0(points[::-1], 20.0, log_scale=True) == pytest.approx(0.02 * 2 ** -0.5)
    assert interpolate_at_l0([(10.0, -1.0), (40.0, 1.0)], 20.0, log_scale=False) == pytest.approx(0.0)
    assert interpolate_at_l0(points, 50.0, log_scale=True) is None  # outside the sweep: no extrapolation
    assert interpolate_at_l0([(10.0, -1.0), (40.0, 1.0)], 20.0, log_scale=True) is None


def test_the_distinct_tokens_study_can_be_skipped(tmp_path):
    from dataclasses import replace

    from sae_fast.reproduce.family import train_distinct_study

    config = replace(tiny_config(tmp_path), distinct_rows=0)
    assert train_distinct_study(config, reader=None, log=print) is None
    with pytest.raises(ValueError, match="distinct_rows"):
        replace(tiny_config(tmp_path), distinct_rows=100)
    with pytest.raises(ValueError, match="l1_l0_targets"):
        replace(tiny_config(tmp_path), l1_l0_targets=(30.0, 0.0, 40.0))
    with pytest.raises(ValueError, match="normalize"):
        replace(tiny_config(tmp_path), l1_normalization="per_batch")


def test_rerun_reuses_and_extends(reproduced, capsys):
    out, _ = reproduced
    first = (out / "saes" / "step000016" / "done.json").stat().st_mtime_ns
    run_reproduction(tiny_config(out, milestones=(8, 16, 24)))
    log = capsys.readouterr().out
    assert "cache: reusing" in log and "step 16 already snapshotted" in log and "resuming" in log
    assert (out / "saes" / "step000016" / "done.json").stat().st_mtime_ns == first
    assert json.loads((out / "saes" / "step000024" / "done.json").read_text())["step"] == 24


def test_bad_milestones_are_refused(tmp_path):
    with pytest.raises(ValueError, match="milestones"):
        tiny_config(tmp_path, milestones=(16, 8))
    with pytest.raises(SystemExit):
        main(["--help"])


def test_matryoshka_study_after_the_reproduction(reproduced):
    from sae_fast.reproduce.matryoshka import prefix_sae, run_matryoshka_study

    out, _ = reproduced
    report = run_matryoshka_study(tiny_config(out), log=lambda m: None)
    result = json.loads((out / "matryoshka" / "step000016" / "matryoshka.json").read_text())
    assert set(result["prefix_vs_batchtopk"]) == {"24", "48", "96"}
    assert set(result["prefix_vs_prefix"]) == {"24_to_48", "48_to_96"}
    # A prefix's first latents are the next prefix's: none of them can be novel.
    assert result["prefix_vs_prefix"]["24_to_48"]["novel_fraction"] <= 0.5
    assert 0 <= result["meta_sae_fve"]["matryoshka"] <= 1 and "Matryoshka" in report.read_text()
    sae = load_pretrained(out / "matryoshka" / "step000016" / "sae")
    x = ActivationCacheReader(out / "cache", split="heldout").rows(0, 64)
    prefix = prefix_sae(sae, 48)
    assert prefix.encode(x).equal(sae.encode(x)[:, :48])  # the eval-mode prefix is the restriction


def test_reusing_a_cache_of_another_configuration_is_refused(reproduced):
    out, _ = reproduced
    config = tiny_config(out)
    other = ReproduceConfig(**{**config.to_dict(), "milestones": (8, 16), "train_tokens": 6000})
    with pytest.raises(ValueError, match="another extraction"):
        run_reproduction(other)
