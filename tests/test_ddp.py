"""Two gloo ranks on CPU give the same SAEs as one process accumulating the same two micro-batches."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sae_fast import BatchTopKSAE, JumpReLUSAE, TopKSAE
from sae_fast.training import ShuffledBatches, TrainConfig, Trainer

GLOBAL_BATCH, STEPS, D_IN = 64, 6, 12


def make_data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(GLOBAL_BATCH * 3, D_IN, generator=g) * torch.linspace(0.5, 2, D_IN) + 1


def make_saes() -> dict:
    # dead_tokens_threshold small so dead-latent counters and the aux loss take part in the comparison.
    return {
        "btk": BatchTopKSAE(D_IN, 40, 3, seed=1, aux_k=6, dead_tokens_threshold=128),
        "topk": TopKSAE(D_IN, 40, 3, seed=2, aux_k=6, dead_tokens_threshold=128),
        "jumprelu": JumpReLUSAE(D_IN, 40, seed=3, l0_coefficient=1e-3, initial_threshold=0.05),
    }


def make_config(micro_batches: int) -> TrainConfig:
    return TrainConfig(batch_size=GLOBAL_BATCH, micro_batches=micro_batches, total_tokens=GLOBAL_BATCH * STEPS,
                       lr=1e-2, progress=False, log_every=1)


def snapshot(saes: dict) -> dict:
    return {name: {k: v.clone() for k, v in sae.state_dict().items()} for name, sae in saes.items()}


def _rank_main(rank: int, world_size: int, port: int, out_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=300))
    try:
        saes = make_saes()
        stream = ShuffledBatches(make_data(), GLOBAL_BATCH, epochs=None, seed=7, rank=rank, world_size=world_size)
        result = Trainer(saes, make_config(micro_batches=1)).train(stream)
        if rank == 0:
            torch.save({"state": snapshot(saes), "final": result.final_metrics}, out_path)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_ranks_equal_single_process_micro_batches(tmp_path):
    out_path = str(tmp_path / "ddp.pt")
    context = mp.start_processes(_rank_main, args=(2, free_port(), out_path), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 400  # generous: shared CI machines can be heavily loaded
    try:
        while not context.join(timeout=5):
            assert time.monotonic() < deadline, "DDP ranks did not finish in time"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    ddp = torch.load(out_path, weights_only=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        saes = make_saes()
        stream = ShuffledBatches(make_data(), GLOBAL_BATCH, epochs=None, seed=7)
        single = Trainer(saes, make_config(micro_batches=2)).train(stream)
    finally:
        torch.set_num_threads(threads)

    expected = snapshot(saes)
    for name, state in expected.items():
        for key, tensor in state.items():
            torch.testing.assert_close(ddp["state"][name][key], tensor, rtol=0, atol=0, msg=f"{name}.{key}")
    # The comparison is not vacuous: training moved the weights, theta and the counters.
    assert float(expected["btk"]["threshold"]) > 0
    assert int(expected["btk"]["threshold_num_batches"]) == STEPS  # one theta update per step, not per shard
    assert int(expected["topk"]["tokens_since_fired"].max()) > 0
    for name, metrics in single.final_metrics.items():
        for key, value in metrics.items():
            assert abs(ddp["final"][name][key] - value) <= 1e-5 * max(1.0, abs(value)), (name, key)
