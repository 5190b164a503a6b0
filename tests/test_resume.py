"""Exact resume after SIGKILL, clear errors for damaged checkpoints, NaN/Inf stops with a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sae_fast import BatchTopKSAE, TopKSAE
from sae_fast.training import CheckpointError, NonFiniteError, ShuffledBatches, TrainConfig, Trainer, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# Trains a BatchTopK, a TopK and a Matryoshka BatchTopK SAE for 3 epochs of 8 steps; with KILL_AT set it SIGKILLs itself when
# the stream is asked for that batch (the trainer has checkpointed at step 6 by then).
TRAIN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE, TopKSAE
    from sae_fast.training import ShuffledBatches, TrainConfig, Trainer

    out_dir, resume, kill_at = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    g = torch.Generator().manual_seed(0)
    data = torch.randn(1024, 16, generator=g) * torch.rand(16, generator=g) * 3

    class KillingBatches(ShuffledBatches):
        def __iter__(self):
            for batch in super().__iter__():
                served = self.epoch * self.batches_per_epoch + self.batch_in_epoch
                if served == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

    saes = {"btk": BatchTopKSAE(16, 48, 4, seed=1, aux_k=8, dead_tokens_threshold=256),
            "topk": TopKSAE(16, 48, 4, seed=2, aux_k=8, dead_tokens_threshold=256),
            "mat": MatryoshkaBatchTopKSAE(16, 48, 4, matryoshka_widths=[8, 24, 48], seed=3, aux_k=8,
                                          dead_tokens_threshold=256)}
    config = TrainConfig(batch_size=128, total_tokens=None, lr=1e-2, checkpoint_dir=out_dir, checkpoint_every=3,
                         log_every=2, log_jsonl=os.path.join(out_dir, "log.jsonl"), progress=False, resume=resume)
    result = Trainer(saes, config).train(KillingBatches(data, 128, epochs=3, seed=5))
    print("steps", result.steps)
    """
)


def run_script(tmp_path: Path, out_dir: Path, resume: bool, kill_at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "train_script.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(script), str(out_dir), "1" if resume else "0", str(kill_at)],
        env=env, capture_output=True, text=True, timeout=600,
    )


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = run_script(tmp_path, reference_dir, resume=False, kill_at=-1)
    assert reference.returncode == 0, reference.stderr
    killed = run_script(tmp_path, killed_dir, resume=False, kill_at=8)  # mid-epoch 2, after step 7 ran
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_checkpoint(killed_dir / "checkpoint.pt")["step"] == 6
    resumed = run_script(tmp_path, killed_dir, resume=True, kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr
    assert "steps 24" in resumed.stdout

    expected = load_checkpoint(reference_dir / "checkpoint.pt")
    actual = load_checkpoint(killed_dir / "checkpoint.pt")
    assert actual["step"] == expected["step"] == 24
    for name in ("btk", "topk", "mat"):
        for key, tensor in expected["saes"][name]["state_dict"].items():
            assert torch.equal(actual["saes"][name]["state_dict"][key], tensor), (name, key)
        for index, state in expected["optimizers"][name]["state"].items():
            for key, tensor in state.items():
                assert torch.equal(actual["optimizers"][name]["state"][index][key], tensor), (name, key)
    assert actual["data"] == expected["data"]
    assert actual["history"] == expected["history"]
    # The steps the killed run logged after its checkpoint were dropped, not duplicated.
    log = [json.loads(line) for line in (killed_dir / "log.jsonl").read_text().splitlines()]
    reference_log = [json.loads(line) for line in (reference_dir / "log.jsonl").read_text().splitlines()]
    assert log == reference_log


def small_trainer(tmp_path: Path, **overrides) -> tuple[Trainer, dict]:
    saes = {"btk": BatchTopKSAE(8, 16, 2, seed=0), "topk": TopKSAE(8, 16, 2, seed=0)}
    config = dict(batch_size=32, total_tokens=None, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=2,
                  progress=False)
    config.update(overrides)
    return Trainer(saes, TrainConfig(**config)), saes


def test_truncated_or_corrupt_checkpoint_raises_naming_the_file(tmp_path):
    trainer, _ = small_trainer(tmp_path)
    trainer.train(ShuffledBatches(torch.randn(128, 8), 32, epochs=1))
    path = tmp_path / "ckpt" / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is truncated or corrupt"):
        small_trainer(tmp_path, resume=True)[0].train(ShuffledBatches(torch.randn(128, 8), 32, epochs=1))
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    path.write_bytes(data[:10])
    with pytest.raises(CheckpointError, match="not an sae_fast checkpoint or is truncated"):
        load_checkpoint(path)
    path.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        small_trainer(tmp_path, resume=True)[0].train([torch.randn(32, 8)])


def test_resume_rejects_a_checkpoint_of_different_saes(tmp_path):
    trainer, _ = small_trainer(tmp_path)
    trainer.train(ShuffledBatches(torch.randn(64, 8), 32, epochs=1))
    other = Trainer({"btk": BatchTopKSAE(8, 32, 2)}, TrainConfig(batch_size=32, checkpoint_dir=str(tmp_path / "ckpt"),
                                                                 resume=True, progress=False))
    with pytest.raises(CheckpointError, match="holds SAEs"):
        other.train([torch.randn(32, 8)])


def test_nan_in_activations_stops_and_keeps_last_good_checkpoint(tmp_path):
    batches = [torch.randn(32, 8) for _ in range(6)]
    batches[4][3, 5] = float("nan")
    trainer, saes = small_trainer(tmp_path)
    with pytest.raises(NonFiniteError, match=r"step 5 in the activations") as info:
        trainer.train(batches)
    assert info.value.step == 5 and info.value.sae_name is None
    checkpoint = load_checkpoint(tmp_path / "ckpt" / "checkpoint.pt")
    assert checkpoint["step"] == 4
    assert checkpoint["data"] == {"kind": "CountingBatches", "consumed": 4}
    for name, sae in saes.items():
        for key, tensor in sae.state_dict().items():
            assert torch.equal(checkpoint["saes"][name]["state_dict"][key], tensor), (name, key)


def test_inf_loss_names_the_step_and_the_sae(tmp_path):
    batches = [torch.randn(32, 8) for _ in range(4)]
    batches[2][0] = 3e25  # finite activations whose squared error overflows float32
    trainer, saes = small_trainer(tmp_path, checkpoint_every=1)
    with pytest.raises(NonFiniteError, match=r"step 3 in SAE 'btk'.*last good checkpoint \(step 2\)") as info:
        trainer.train(batches)
    assert info.value.sae_name == "btk"
    checkpoint = load_checkpoint(tmp_path / "ckpt" / "checkpoint.pt")
    assert checkpoint["step"] == 2
    for key, tensor in saes["btk"].state_dict().items():  # the failed step's buffer updates were rolled back
        assert torch.equal(checkpoint["saes"]["btk"]["state_dict"][key], tensor), key
