"""Stage ``decode_aux``: the sparse decode and the fused aux selection against their dense forms.

- ``decode+W_dec_grad``: the forward decode and the decoder-weight gradient, the two products that
  are O(n m d) when dense; sparse: ``sparse_decode`` and ``sparse_transpose_matmul`` on the codes.
- ``encode_select+aux``: encoder, BatchTopK and the aux loss's top-``aux_k`` among the dead latents;
  dense: the peers' dead-masked ``topk(dim=1)`` and scatter (``dense_peer``); fused: one
  ``encode_select`` whose epilogue copies the dead columns (few dead) or reads them in place.
"""

from __future__ import annotations

import dense_peer
import torch

from gpu_check.config import CheckConfig
from gpu_check.grid import grid_cases, run_cases, speedups
from gpu_check.stage_selection import pre_activations
from gpu_check.timing import median_seconds, tf32_products
from sae_fast.kernels.encode_select_triton import encode_select
from sae_fast.kernels.triton_backend import TRITON_OPS

NEEDS_S = 10.0


def timed_rows(cfg: CheckConfig, op: str, m: int, k: int, impls: dict) -> list[dict]:
    return [{"op": op, "m": m, "k": k, "impl": impl, "median_s": median_seconds(fn, cfg.device, cfg.warmup, cfg.reps)}
            for impl, fn in impls.items()]  # fmt: skip


def _decode_rows(cfg: CheckConfig, m: int, k: int) -> list[dict]:
    g = torch.Generator(device=cfg.device).manual_seed(2)
    codes = TRITON_OPS.batch_topk_select(pre_activations(cfg, m), cfg.n_tokens * k)
    W_dec = torch.randn(m, cfg.d_in, device=cfg.device, generator=g) / cfg.d_in**0.5
    b_dec = torch.randn(cfg.d_in, device=cfg.device, generator=g)
    grad_out = torch.randn(cfg.n_tokens, cfg.d_in, device=cfg.device, generator=g)
    dense = codes.to_dense()
    impls = {
        "dense_torch": lambda: (dense @ W_dec + b_dec, dense.T @ grad_out),
        "triton": lambda: (TRITON_OPS.sparse_decode(codes, W_dec, b_dec),
                           TRITON_OPS.sparse_transpose_matmul(codes, grad_out)),
    }  # fmt: skip
    return timed_rows(cfg, "decode+W_dec_grad", m, k, impls)


def _aux_rows(cfg: CheckConfig, m: int, k: int) -> list[dict]:
    g = torch.Generator(device=cfg.device).manual_seed(3)
    n, d = cfg.n_tokens, cfg.d_in
    x = torch.randn(n, d, device=cfg.device, generator=g)
    W_enc = torch.randn(d, m, device=cfg.device, generator=g) / d**0.5
    b_enc, b_dec = torch.full((m,), -0.05, device=cfg.device), torch.zeros(d, device=cfg.device)
    dead = torch.zeros(m, dtype=torch.bool, device=cfg.device)
    dead[: int(cfg.dead_fraction * m)] = True
    dead_latents = dead.nonzero().flatten()
    k_total, aux_k = n * k, min(cfg.aux_k, dead_latents.numel())

    def dense():
        pre = torch.relu((x - b_dec) @ W_enc + b_enc)
        return dense_peer.dense_batch_topk(pre, k_total), dense_peer.dense_topk(pre * dead, aux_k)

    impls = {
        "dense_torch": dense,
        "triton_fused": lambda: encode_select(x, W_enc, b_enc, b_dec, k_total=k_total, aux_latents=dead_latents,
                                              aux_k=aux_k),
    }  # fmt: skip
    return timed_rows(cfg, "encode_select+aux", m, k, impls)


def run(cfg: CheckConfig, context: dict) -> dict:
    def measure(m: int, k: int) -> list[dict]:
        with tf32_products(cfg.tf32):
            return _decode_rows(cfg, m, k) + _aux_rows(cfg, m, k)

    outcome = run_cases(cfg, context["budget"], grid_cases(cfg), measure)
    for op in ("decode+W_dec_grad", "encode_select+aux"):
        speedups([row for row in outcome["rows"] if row["op"] == op], "dense_torch")
    return outcome
