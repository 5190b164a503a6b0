"""Published SAEs by name, offline: a Hugging Face cache is laid out on disk the way huggingface_hub lays it
out (``models--OWNER--REPO/refs/<branch>`` holding a commit, ``snapshots/<commit>/<files>``) and every SAE is
resolved through the real library with ``HF_HUB_OFFLINE=1``; nothing here touches the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sae_fast
from sae_fast.io import load_pretrained, save_pretrained
from sae_fast.io.hub import parse_hf_uri, parse_sae_reference, resolve_sae_folder
from sae_fast.io.releases import SHIPPED_RELEASES, release_registry
from sae_fast.sae import BatchTopKSAE, ReLUSAE

FAMILY = "gpt2-small-res-jb-feature-splitting"
FAMILY_REPO = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"
GEMMA_REPO = "google/gemma-scope-2b-pt-res"
COMMIT = "a" * 40
OTHER_COMMIT = "b" * 40


class HubCache:
    """A Hugging Face cache folder written by hand, in huggingface_hub's layout."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def snapshot(self, repo_id: str, commit: str = COMMIT, ref: str | None = "main") -> Path:
        repo = self.root / f"models--{repo_id.replace('/', '--')}"
        if ref is not None:
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / ref).write_text(commit)  # huggingface_hub writes the bare hash, no newline
        folder = repo / "snapshots" / commit
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def put_saelens(self, repo_id: str, folder: str, sae: torch.nn.Module, metadata: dict | None = None,
                    commit: str = COMMIT, ref: str | None = "main") -> Path:
        """An SAE as SAELens publishes it (cfg.json + sae_weights.safetensors, no sae_fast state file)."""
        target = self.snapshot(repo_id, commit, ref) / folder
        save_pretrained(sae, target, metadata=metadata)
        (target / "sae_fast_state.safetensors").unlink()
        cfg = json.loads((target / "cfg.json").read_text())
        del cfg["sae_fast"]
        (target / "cfg.json").write_text(json.dumps(cfg))
        return target


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty offline Hugging Face cache; huggingface_hub reads these variables once at import, so its
    constants are patched too (as ``sae_fast.activations.hub_offline`` does)."""
    import huggingface_hub.constants as constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return HubCache(root)


def relu_sae(d_in=8, d_sae=16, seed=0):
    sae = ReLUSAE(d_in, d_sae, l1_coefficient=0.01, seed=seed)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2)
        sae.b_dec.normal_(0, 0.3)
    return sae.eval()


def test_release_by_name_and_by_release_id_string_loads_from_the_cache(hub):
    sae = relu_sae()
    hub.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_768", sae)
    x = torch.randn(5, 8)
    by_pair = load_pretrained(FAMILY, "blocks.8.hook_resid_pre_768")
    by_string = sae_fast.load_pretrained(f"{FAMILY}:blocks.8.hook_resid_pre_768", dtype="float64")
    assert isinstance(by_pair, ReLUSAE) and torch.allclose(by_pair(x), sae(x), atol=1e-6)
    assert by_string.dtype == torch.float64 and torch.allclose(by_string(x.double()), sae(x).double(), atol=1e-5)


def test_hf_uri_with_revision_branch_and_commit(hub):
    old, new = relu_sae(seed=1), relu_sae(seed=2)
    hub.put_saelens("someone/saes", "layer3/s16", old, commit=OTHER_COMMIT, ref="v1")
    hub.put_saelens("someone/saes", "layer3/s16", new)
    x = torch.randn(4, 8)
    assert torch.allclose(load_pretrained("hf://someone/saes/layer3/s16")(x), new(x), atol=1e-6)
    assert torch.allclose(load_pretrained("hf://someone/saes/layer3/s16@v1")(x), old(x), atol=1e-6)
    assert torch.allclose(load_pretrained(f"hf://someone/saes/layer3/s16@{OTHER_COMMIT}")(x), old(x), atol=1e-6)
    assert torch.allclose(load_pretrained("hf://someone/saes/layer3/s16", revision="v1")(x), old(x), atol=1e-6)
    root = hub.snapshot("someone/root-sae")
    save_pretrained(new, root)  # an sae_fast save at the repository root, state file included
    assert isinstance(load_pretrained("hf://someone/root-sae"), ReLUSAE)


def test_sae_fast_saves_on_the_hub_keep_their_state(hub, tmp_path):
    sae = BatchTopKSAE(8, 16, k=2, seed=0)
    sae.train()
    sae.training_loss(torch.randn(32, 8))
    sae.eval()
    save_pretrained(sae, hub.snapshot("me/btk") / "run")
    loaded = load_pretrained("hf://me/btk/run")
    assert isinstance(loaded, BatchTopKSAE) and float(loaded.threshold) == float(sae.threshold)


def test_gemma_scope_release_reads_params_npz(hub):
    sae_id = "layer_12/width_16k/average_l0_82"
    d_in, d_sae = 6, 10
    rng = np.random.default_rng(0)
    arrays = {"W_enc": rng.normal(size=(d_in, d_sae)), "W_dec": rng.normal(size=(d_sae, d_in)),
              "b_enc": rng.normal(size=d_sae), "b_dec": rng.normal(size=d_in), "threshold": rng.uniform(0, 1, d_sae)}
    folder = hub.snapshot(GEMMA_REPO) / sae_id
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})
    loaded = load_pretrained("gemma-scope-2b-pt-res", sae_id)
    x = torch.randn(3, d_in)
    pre = x @ torch.tensor(arrays["W_enc"]).float() + torch.tensor(arrays["b_enc"]).float()
    codes = pre.relu() * (pre > torch.tensor(arrays["threshold"]).float())
    assert torch.allclose(loaded.encode(x), codes, atol=1e-5)


def test_unknown_release_or_id_lists_close_matches(hub):
    with pytest.raises(ValueError, match=r"unknown SAE release 'gpt2-small-res-jb-feature-spliting'.*"
                                         r"gpt2-small-res-jb-feature-splitting"):
        load_pretrained("gpt2-small-res-jb-feature-spliting", "blocks.8.hook_resid_pre_768")
    with pytest.raises(ValueError, match=r"no SAE 'blocks.8.hook_resid_pre_700'.*blocks.8.hook_resid_pre_768"):
        load_pretrained(f"{FAMILY}:blocks.8.hook_resid_pre_700")
    with pytest.raises(ValueError, match=r"is a release of 8 SAEs; name one"):
        load_pretrained(FAMILY)
    with pytest.raises(FileNotFoundError, match="RELEASE:ID"):  # neither a path nor a known release
        load_pretrained("gpt2-small-res-jb")
    with pytest.raises(ValueError, match="names no repository"):
        load_pretrained("hf://just-an-owner")
    with pytest.raises(TypeError, match="device is a keyword"):
        load_pretrained(FAMILY, torch.device("cpu"))


def test_missing_from_the_offline_cache_says_how_to_get_it(hub):
    with pytest.raises(FileNotFoundError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE.*huggingface-cli "
                                                r"download jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"):
        load_pretrained(FAMILY, "blocks.8.hook_resid_pre_1536")
    hub.snapshot("someone/saes")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        load_pretrained("hf://someone/saes/nothing-here")


def test_corrupt_or_lying_download_is_refused_like_a_local_file(hub):
    target = hub.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_768", relu_sae())
    weights = target / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # an interrupted download
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_pretrained(FAMILY, "blocks.8.hook_resid_pre_768")

    target = hub.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_1536", relu_sae())
    cfg = json.loads((target / "cfg.json").read_text())
    cfg["d_sae"] = 1536  # the config claims another width than the weights hold
    (target / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"shape \(8, 16\), expected \(8, 1536\)"):
        load_pretrained(FAMILY, "blocks.8.hook_resid_pre_1536")

    target = hub.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_3072", relu_sae())
    tensors = {"W_enc": torch.full((8, 16), float("nan")), "W_dec": torch.randn(16, 8), "b_enc": torch.zeros(16),
               "b_dec": torch.zeros(8)}
    save_file(tensors, str(target / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_pretrained(FAMILY, "blocks.8.hook_resid_pre_3072")


def test_reference_parsing_prefers_existing_paths(tmp_path, monkeypatch):
    assert parse_hf_uri("hf://a/b/c/d@rev").folder == "c/d" and parse_hf_uri("hf://a/b@rev").revision == "rev"
    assert parse_hf_uri("hf://a/b").folder == "" and parse_hf_uri("hf://a/b").revision is None
    assert parse_sae_reference("not-a-release:x") is None
    monkeypatch.chdir(tmp_path)
    local = Path(f"{FAMILY}:blocks.8.hook_resid_pre_768")
    save_pretrained(relu_sae(), local)
    assert parse_sae_reference(str(local)) is None and resolve_sae_folder(str(local)) == local
    assert isinstance(load_pretrained(str(local)), ReLUSAE)


def test_saelens_registry_is_used_when_sae_lens_is_importable(hub, monkeypatch):
    class Lookup:  # the fields of SAELens's PretrainedSAELookup that a release needs
        def __init__(self, release, repo_id, saes_map, conversion_func=None):
            self.release, self.repo_id, self.model = release, repo_id, "gpt2-small"
            self.saes_map, self.conversion_func = saes_map, conversion_func

    directory = {"their-release": Lookup("their-release", "them/saes", {"the-id": "deep/folder"}),
                 "their-hook-z": Lookup("their-hook-z", "them/z", {"z": "z.pt"}, "connor_rob_hook_z")}
    module = types.ModuleType("sae_lens.loading.pretrained_saes_directory")
    module.get_pretrained_saes_directory = lambda: directory
    monkeypatch.setitem(sys.modules, "sae_lens", types.ModuleType("sae_lens"))
    monkeypatch.setitem(sys.modules, "sae_lens.loading", types.ModuleType("sae_lens.loading"))
    monkeypatch.setitem(sys.modules, "sae_lens.loading.pretrained_saes_directory", module)

    releases, source = release_registry()
    assert source == "sae_lens" and set(releases) == set(directory)
    hub.put_saelens("them/saes", "deep/folder", relu_sae())
    assert isinstance(load_pretrained("their-release:the-id"), ReLUSAE)
    with pytest.raises(ValueError, match="connor_rob_hook_z"):
        load_pretrained("their-hook-z", "z")
    with pytest.raises(ValueError, match=r"unknown SAE release.*close releases: \['their-release'"):
        load_pretrained("their-releas", "the-id")


def test_shipped_registry_holds_the_verified_families():
    family = SHIPPED_RELEASES[FAMILY]
    assert family.repo_id == FAMILY_REPO and family.layout is None
    assert list(family.saes) == [f"blocks.8.hook_resid_pre_{w}" for w in
                                 (768, 1536, 3072, 6144, 12288, 24576, 49152, 98304)]
    gemma = SHIPPED_RELEASES["gemma-scope-2b-pt-res"]
    assert gemma.repo_id == GEMMA_REPO and gemma.layout == "gemma_2"
    assert "layer_12/width_16k/average_l0_82" in gemma.saes and "layer_12/width_32k/average_l0_76" in gemma.saes
    assert all(sae_id.startswith(("layer_12/width_16k/", "layer_12/width_32k/")) for sae_id in gemma.saes)


def test_real_environment_variables_in_a_fresh_process(tmp_path):
    """HF_HUB_OFFLINE and HF_HUB_CACHE set before huggingface_hub is imported, as a user would set them."""
    cache = HubCache(tmp_path / "hf")
    cache.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_768", relu_sae())
    code = ("import sae_fast; s = sae_fast.load_pretrained('gpt2-small-res-jb-feature-splitting:"
            "blocks.8.hook_resid_pre_768'); print(type(s).__name__, s.d_sae)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache.root),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ReLUSAE", "16"]


# ---------------------------------------------------------------------------- the CLI with published SAEs
def _published_pair(hub, d_in=32, hook="blocks.1.hook_resid_post", **metadata):
    """Two SAEs of the feature-splitting release in the cache, recording the tiny model as theirs."""
    meta = {"model_name": "tiny-random", "hook_name": hook, "context_size": 16, "prepend_bos": False, **metadata}
    for width, seed in ((768, 0), (1536, 1)):
        hub.put_saelens(FAMILY_REPO, f"blocks.8.hook_resid_pre_{width}", relu_sae(d_in, width // 48, seed), meta)
    return [f"{FAMILY}:blocks.8.hook_resid_pre_{width}" for width in (768, 1536)]


def test_stitch_published_saes_streams_activations_from_their_config(hub, tmp_path, capsys):
    from sae_fast.cli import main

    small, large = _published_pair(hub)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 20)
    out = tmp_path / "stitch"
    assert main(["stitch", "--small", small, "--large", large, "--texts", str(corpus), "--out", str(out),
                 "--max-tokens", "60", "--no-figures", "--threshold", "0.3"]) == 0
    record = json.loads((out / "stitch.json").read_text())
    streamed = record["streamed"]
    assert record["small"] == small and record["classification"]["n_large_latents"] == 32
    assert streamed["model"] == "tiny-random" and streamed["hook_name"] == "blocks.1.hook_resid_post"
    assert streamed["seq_len"] == 16 and record["n_tokens"] == 60  # 4 whole sequences of 15 kept positions
    # The same SAEs read from a tensor file instead (the --cache path).
    rows = torch.randn(40, 32)
    torch.save(rows, tmp_path / "acts.pt")
    assert main(["stitch", "--small", small, "--large", large, "--cache", str(tmp_path / "acts.pt"), "--out",
                 str(tmp_path / "stitch2"), "--no-figures"]) == 0
    assert json.loads((tmp_path / "stitch2" / "stitch.json").read_text())["n_tokens"] == 40


def test_stitch_refuses_saes_whose_configs_disagree_or_are_silent(hub, tmp_path, capsys):
    from sae_fast.cli import main

    small, _ = _published_pair(hub)
    hub.put_saelens(FAMILY_REPO, "blocks.8.hook_resid_pre_3072", relu_sae(32, 64),
                    {"model_name": "tiny-random", "hook_name": "blocks.2.hook_resid_post"})
    other = f"{FAMILY}:blocks.8.hook_resid_pre_3072"
    assert main(["stitch", "--small", small, "--large", other, "--texts", "x.txt", "--out",
                 str(tmp_path / "s")]) == 2
    assert "trained on other activations" in capsys.readouterr().err  # the SAEs' own provenance check
    hub.put_saelens("me/bare", "small", relu_sae(32, 16))  # configs without model or hook
    hub.put_saelens("me/bare", "large", relu_sae(32, 64))
    assert main(["stitch", "--small", "hf://me/bare/small", "--large", "hf://me/bare/large", "--out",
                 str(tmp_path / "s")]) == 2
    assert "do not record model_name; pass --model" in capsys.readouterr().err


def test_meta_and_eval_take_published_saes(hub, tmp_path, capsys):
    from sae_fast.cli import main
    from sae_fast.commands.meta import reference_label

    small, large = _published_pair(hub)
    out = tmp_path / "meta"
    assert main(["meta", "--sae", large, "--reference", small, "--reference", "hf://jbloom/"
                 "GPT2-Small-Feature-Splitting-Experiment-Layer-8/blocks.8.hook_resid_pre_768@main", "--out", str(out),
                 "--n-meta-latents", "4", "--k", "2", "--epochs", "2", "--no-progress", "--examples", "1"]) == 0
    report = json.loads((out / "meta_sae.json").read_text())
    assert report["decomposed_sae"] == large and report["fit"]["n_latents"] == 32
    assert set(report["max_cos_vs_references"]) == {"blocks.8.hook_resid_pre_768"}  # one SAE, named twice
    assert reference_label("gemma-scope-2b-pt-res:layer_12/width_16k/average_l0_82") == \
        "layer_12/width_16k/average_l0_82"
    assert main(["eval", "--sae", small, "--cache", str(tmp_path / "missing"), "--no-progress"]) == 2


# ---------------------------------------------------------------------------- reproduce --preset paper-gpt2
def test_paper_gpt2_preset_offline_fails_at_once_saying_what_it_needs(hub, tmp_path, capsys):
    from sae_fast.reproduce.pipeline import main

    out = tmp_path / "out"
    assert main(["--preset", "paper-gpt2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "gpt2" in err and "'openwebtext'" in err
    assert f"huggingface-cli download {FAMILY_REPO} --include 'blocks.8.hook_resid_pre_768/*'" in err
    assert not out.exists()  # nothing was loaded or written
    assert main(["--preset", "paper-gpt2", "--out", str(out), "--small", "blocks.8.hook_resid_pre_76"]) == 2
    assert "close ids" in capsys.readouterr().err


def test_paper_gpt2_preset_runs_end_to_end_on_a_cached_family(hub, tmp_path, capsys):
    """The whole preset on stand-ins for the family (tiny SAEs recording the tiny model) and local texts."""
    from sae_fast.reproduce.pipeline import main

    meta = {"model_name": "tiny-random", "hook_name": "blocks.1.hook_resid_post", "context_size": 16}
    for width, seed in ((768, 0), (1536, 1), (3072, 2), (49152, 3)):
        hub.put_saelens(FAMILY_REPO, f"blocks.8.hook_resid_pre_{width}", relu_sae(32, width // 48, seed), meta)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Sparse autoencoders decompose activations into features. " * 20)
    out = tmp_path / "out"
    assert main(["--preset", "paper-gpt2", "--out", str(out), "--texts", str(corpus), "--device", "cpu",
                 "--eval-tokens", "60", "--meta-epochs", "2", "--n-meta-latents", "4", "--no-progress"]) == 0
    document = json.loads((out / "claims.json").read_text())
    assert document["activations"]["rows"] == 60 and set(document["stitching"]["pairs"]) == {"16_to_32", "32_to_64"}
    assert document["claims"]["novel_fraction"]["paper"] == pytest.approx(657 / 1536)
    novel = document["stitching"]["pairs"]["16_to_32"]["classification"]["novel_fraction"]
    assert document["claims"]["novel_fraction"]["measured"] == novel
    assert "| novel_fraction:" in (out / "report.md").read_text()


def test_a_device_as_the_second_positional_argument_says_to_pass_it_by_keyword(tmp_path):
    folder = tmp_path / "sae"
    save_pretrained(relu_sae(), folder)
    for device in ("cpu", "cuda:0"):
        with pytest.raises(TypeError, match=f"device={device!r}"):
            load_pretrained(folder, device)
    assert isinstance(load_pretrained(folder, device="cpu"), ReLUSAE)
