"""A small file never exhausts memory: sizes a file declares are checked against what it holds first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

from sae_fast import BatchTopKSAE, TopKSAE, load_pretrained, save_pretrained
from sae_fast.activations import ActivationConfig, ActivationStream, TextList, extract_activations
from sae_fast.activations.tiny_model import tiny_random_model
from sae_fast.cli import main
from sae_fast.training.checkpoint import MAGIC, load_checkpoint, save_checkpoint


# The process's peak resident memory in bytes. VmHWM belongs to the process image, so unlike
# getrusage's ru_maxrss it does not start at the peak of the (large) pytest process that forked it.
PEAK_RSS = "peak = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024"
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc (Linux)")


def small_save(cls, folder):
    sae = cls(8, 16, 2, seed=0)
    sae.training_loss(torch.randn(32, 8))  # BatchTopK estimates theta
    return save_pretrained(sae.eval(), folder)


def declare_sizes(folder, d_in=None, d_sae=None) -> None:
    """Edit a native save's cfg.json (top level and 'sae_fast' block alike) to declare other sizes."""
    path = folder / "cfg.json"
    cfg = json.loads(path.read_text())
    for holder in (cfg, cfg["sae_fast"]["config"]):
        if d_in is not None:
            holder["d_in"] = d_in
        if d_sae is not None:
            holder["d_sae"] = d_sae
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE])
@pytest.mark.parametrize("sizes", [{"d_sae": 5_000_000}, {"d_in": 3_000_000}, {"d_in": 4096, "d_sae": 65536}])
def test_a_native_config_declaring_a_huge_sae_is_refused_from_the_header(tmp_path, cls, sizes):
    folder = small_save(cls, tmp_path / "sae")
    declare_sizes(folder, **sizes)
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors has shape \(\d+, \d+\), expected .*cfg\.json"):
        load_pretrained(folder)


def write_npy_member(archive: zipfile.ZipFile, name: str, shape, dtype, data_bytes: int, chunk=2**20) -> None:
    """An npy entry whose header declares ``shape`` but which holds ``data_bytes`` of zeros, streamed."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(member, header)
        zeros = bytes(chunk)
        left = data_bytes
        while left > 0:
            member.write(zeros[: min(chunk, left)])
            left -= chunk


def gemma_scope_file(path, d_in, d_sae, *, declared=None, compression=zipfile.ZIP_DEFLATED, w_enc_bytes=None):
    """A params.npz of zeros; ``declared`` overrides the shapes the headers state for some arrays."""
    shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,), "threshold": (d_sae,)}
    declared = {**shapes, **(declared or {})}
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, shape in shapes.items():
            size = int(np.prod(shape)) * 4
            if name == "W_enc" and w_enc_bytes is not None:
                size = w_enc_bytes
            write_npy_member(archive, name, declared[name], np.float32, size)
    return path


def test_a_real_gemma_scope_file_still_loads(tmp_path):
    path = tmp_path / "params.npz"
    rng = np.random.default_rng(0)
    arrays = {"W_enc": rng.normal(size=(8, 16)), "W_dec": rng.normal(size=(16, 8)), "b_enc": rng.normal(size=16),
              "b_dec": rng.normal(size=8), "threshold": np.abs(rng.normal(size=16))}
    np.savez_compressed(path, **{k: v.astype(np.float32) for k, v in arrays.items()})
    sae = load_pretrained(path)
    assert sae.W_enc.shape == (8, 16)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("declared", [
    {"W_enc": (100_000, 100_000)},  # 37 GiB declared by a file of a few hundred bytes
    {"threshold": (2**40,)},
    {"b_dec": (3, 8)},  # not a size problem, a shape one: the header disagrees with its own bytes
])
def test_npy_headers_that_disagree_with_their_entries_are_refused_before_reading(tmp_path, declared, compression):
    path = gemma_scope_file(tmp_path / "params.npz", 8, 16, declared=declared, compression=compression)
    with pytest.raises(ValueError, match=r"params\.npz declares shape .* but its entry holds \d+ bytes"):
        load_pretrained(path)


def test_npz_arrays_whose_shapes_disagree_with_each_other_are_refused_before_reading(tmp_path):
    # A compressed bomb: W_enc really holds 64 MiB of zeros (64 KiB compressed), W_dec says d_sae = 16.
    d_in, d_sae = 8, 2**21
    path = gemma_scope_file(tmp_path / "params.npz", d_in, 16, declared={"W_enc": (d_in, d_sae)},
                            w_enc_bytes=d_in * d_sae * 4)
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"tensor 'W_dec' in .*params\.npz has shape \(16, 8\), expected \(2097152, 8\)"):
        load_pretrained(path)


@needs_proc
def test_loaders_refuse_declared_sizes_without_allocating_them(tmp_path):
    """The refusals above happen before allocation: peak memory stays far below what the files declare."""
    folder = small_save(BatchTopKSAE, tmp_path / "sae")
    declare_sizes(folder, d_sae=20_000_000)  # 1.3 GB of parameters if built
    header_lie = gemma_scope_file(tmp_path / "lie.npz", 8, 16, declared={"W_enc": (20_000, 20_000)})  # 1.6 GB
    bomb = gemma_scope_file(tmp_path / "bomb.npz", 8, 16, declared={"W_enc": (8, 2**21)}, w_enc_bytes=8 * 2**23)
    script = textwrap.dedent(f"""
        import torch
        from sae_fast import load_pretrained
        {PEAK_RSS}
        before = peak()
        for path in [{str(folder)!r}, {str(header_lie)!r}, {str(bomb)!r}]:
            try:
                load_pretrained(path)
            except ValueError:
                pass
            else:
                raise SystemExit("loaded " + path)
        print(peak() - before)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) < 32 * 2**20  # the bomb alone would take 64 MiB


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_random_model()


@pytest.mark.parametrize("seq_len", [513, 20_000])
def test_sequences_longer_than_the_models_context_are_refused(tmp_path, tiny_model, seq_len):
    config = ActivationConfig(hook_name="blocks.0.hook_resid_post", seq_len=seq_len, max_tokens=seq_len)
    texts = TextList(["x" * 10])
    with pytest.raises(ValueError, match=rf"seq_len={seq_len} exceeds the model's context of 512 positions"):
        extract_activations(tiny_model, texts, tmp_path / "cache", config, progress=False)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ValueError, match="exceeds the model's context"):
        ActivationStream(tiny_model, texts, config)


def test_the_cache_command_refuses_a_seq_len_beyond_the_context(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world " * 50)
    code = main(["cache", "--model", "tiny-random", "--texts", str(corpus), "--out", str(tmp_path / "c"),
                 "--hook-name", "blocks.0.hook_resid_post", "--seq-len", "20000", "--max-tokens", "20000",
                 "--no-progress"])
    assert code == 2
    assert "exceeds the model's context of 512" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_sequence_as_long_as_the_context_is_accepted(tmp_path, tiny_model):
    config = ActivationConfig(hook_name="blocks.0.hook_resid_post", seq_len=512, max_tokens=511)
    reader = extract_activations(tiny_model, TextList(["abc " * 200]), tmp_path / "cache", config, progress=False)
    assert reader.activations.shape[0] == 511
    assert reader.activations.shape[1] == 32


@needs_proc
def test_checkpoints_are_streamed_not_held_in_memory(tmp_path):
    """Loading costs about the tensors themselves, saving almost nothing more (both were 2-3x the file)."""
    path = tmp_path / "checkpoint.pt"
    script = textwrap.dedent(f"""
        import torch
        from sae_fast.training.checkpoint import load_checkpoint, save_checkpoint
        {PEAK_RSS}
        base = peak()
        payload = load_checkpoint({str(path)!r})
        loaded = peak() - base
        save_checkpoint({str(path)!r}, payload)
        print(loaded, peak() - base)
    """)
    payload_bytes = 64 * 2**20
    save_checkpoint(path, {"w": torch.ones(payload_bytes // 8), "v": torch.ones(payload_bytes // 8), "step": 1})
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, saved = (int(n) for n in done.stdout.split())
    assert loaded < 1.4 * payload_bytes and saved < 1.4 * payload_bytes
    assert load_checkpoint(path)["step"] == 1


def test_checkpoints_written_whole_in_memory_still_load(tmp_path):
    """The streamed writer produces the same bytes the earlier in-memory writer did, and reads its files."""
    import hashlib
    import io

    payload = {"w": torch.arange(10.0), "nested": {"k": [1, 2]}, "step": 7}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    (tmp_path / "old.pt").write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert torch.equal(loaded["w"], payload["w"]) and loaded["nested"] == payload["nested"] and loaded["step"] == 7
    save_checkpoint(tmp_path / "new.pt", payload)
    assert (tmp_path / "new.pt").read_bytes() == (tmp_path / "old.pt").read_bytes()
