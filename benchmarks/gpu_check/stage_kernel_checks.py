"""Stage ``kernel_checks``: every Triton op against its plain-torch reference at the target case's size.

The kernel tests use small shapes; this stage repeats the comparison at the size the grid times
(n tokens, the target m, k), where block counts, int32 offsets and the fused paths' buffer choices
are those of real training. The references run on the same device (they are plain torch).

- selection: BatchTopK on random, heavily tied and partly empty pre-activations, bit for bit;
- encode + select with the fused aux: the pre-activations against the torch encoder (TF32 tolerance),
  the codes and aux codes bit for bit against the references applied to the returned pre;
- the sparse products forward and backward through the autograd Functions (decoder and kept encoder
  values), and the nested (Matryoshka) decode, by relative error ``||out - ref|| / ||ref||``;
- max cosine (Triton, TF32) against the blocked torch path in exact fp32.
"""

from __future__ import annotations

import torch

from gpu_check.config import CheckConfig
from gpu_check.targets import target
from gpu_check.timing import tf32_products
from sae_fast.autograd import KeptEncoderValues, NestedSparseDecode, SparseDecode
from sae_fast.kernels import encode_select_reference, select_reference
from sae_fast.kernels.dispatch import REFERENCE_OPS
from sae_fast.kernels.max_cosine import max_cosine_similarity
from sae_fast.kernels.triton_backend import TRITON_OPS
from sae_fast.sparse_codes import SparseCodes

NEEDS_S = 20.0
PRODUCT_TOLERANCE = 1e-5
"""fp32 sparse products: the kernels and the references sum the same terms in another order."""
ENCODER_TOLERANCE = 2e-3
"""The encoder's product against torch's: TF32 lands near 3e-4, IEEE fp32 far below 1e-5."""
COSINE_TOLERANCE = 5e-3
"""Max abs error of a TF32 max cosine (unit rows, d = 768 terms of 10-bit-mantissa products)."""


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def same_codes(got: SparseCodes, want: SparseCodes) -> bool:
    return (
        torch.equal(got.row_offsets, want.row_offsets)
        and torch.equal(got.latent_indices, want.latent_indices)
        and torch.equal(got.values, want.values)
    )


def _selection_checks(pre: torch.Tensor, k_total: int) -> list[dict]:
    tied = (pre * 4).round() / 4  # a few distinct values: many exact ties at the cut
    tied[1::5] = 0.0  # every fifth token has no positive entry
    checks = []
    for label, case in (("random", pre), ("ties and empty rows", tied)):
        got = TRITON_OPS.batch_topk_select(case, k_total)
        want = select_reference.batch_topk_select(case, k_total)
        checks.append(target(f"BatchTopK selection, {label}", "bit for bit", f"nnz {got.nnz} vs {want.nnz}",
                             same_codes(got, want)))  # fmt: skip
    return checks


def _encode_select_checks(x, W_enc, b_enc, b_dec, k_total: int, dead, aux_k: int, tf32: bool) -> list[dict]:
    from sae_fast.kernels.encode_select_triton import encode_select

    with tf32_products(tf32):
        pre, codes, aux_codes = encode_select(x, W_enc, b_enc, b_dec, k_total=k_total, aux_latents=dead, aux_k=aux_k)
    with tf32_products(False):
        error = relative_error(pre, encode_select_reference.encode(x, W_enc, b_enc, b_dec))
    return [
        target("encoder pre-activations", f"< {ENCODER_TOLERANCE}", f"rel err {error:.1e}", error < ENCODER_TOLERANCE),
        target("fused encode + BatchTopK select", "bit for bit on its pre", f"nnz {codes.nnz}",
               same_codes(codes, select_reference.batch_topk_select(pre, k_total))),
        target("fused aux top-k among the dead latents", "bit for bit on its pre", f"nnz {aux_codes.nnz}",
               same_codes(aux_codes, select_reference.subset_topk_select(pre, dead, aux_k))),
    ]  # fmt: skip


def _gradients(function, inputs: list[torch.Tensor], extra: tuple, grad_out: torch.Tensor, ops):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = function.apply(*leaves, *extra, ops)
    out.backward(grad_out)
    return [out.detach(), *(leaf.grad for leaf in leaves)]


def _product_checks(codes: SparseCodes, x, W_enc, b_enc, b_dec, W_dec, widths) -> list[dict]:
    g = torch.Generator(device=x.device).manual_seed(3)
    checks = []
    cases = (
        ("sparse decode", SparseDecode, [codes.values, W_dec, b_dec], (codes,),
         ["out", "d values", "d W_dec", "d b_dec"], x.shape),
        ("kept encoder values", KeptEncoderValues, [codes.values, x, b_dec, W_enc, b_enc], (codes,),
         ["out", "d values (none)", "d x", "d b_dec", "d W_enc", "d b_enc"], (codes.nnz,)),
        ("nested decode", NestedSparseDecode, [codes.values, W_dec, b_dec], (codes, widths),
         ["out", "d values", "d W_dec", "d b_dec"], (widths.numel(), *x.shape)),
    )  # fmt: skip
    for label, function, inputs, extra, names, out_shape in cases:
        grad_out = torch.randn(out_shape, device=x.device, generator=g)
        got = _gradients(function, inputs, extra, grad_out, TRITON_OPS)
        want = _gradients(function, inputs, extra, grad_out, REFERENCE_OPS)
        for name, a, b in zip(names, got, want):
            if b is None:
                continue
            error = relative_error(a, b)
            checks.append(target(f"{label}: {name}", f"< {PRODUCT_TOLERANCE}", f"rel err {error:.1e}",
                                 error < PRODUCT_TOLERANCE))  # fmt: skip
    return checks


def _max_cosine_check(m1: int, m0: int, d: int, device: str) -> dict:
    g = torch.Generator(device=device).manual_seed(4)
    queries, keys = torch.randn(m1, d, device=device, generator=g), torch.randn(m0, d, device=device, generator=g)
    values, _ = max_cosine_similarity(queries, keys, backend="triton")
    with tf32_products(False):
        want, _ = max_cosine_similarity(queries, keys, backend="torch")
    error = float((values - want).abs().max())
    return target(f"max cosine {m1}x{m0}x{d}, Triton vs blocked fp32", f"< {COSINE_TOLERANCE}",
                  f"max abs err {error:.1e}", error < COSINE_TOLERANCE)


def run(cfg: CheckConfig, context: dict) -> dict:
    n, d, device = cfg.n_tokens, cfg.d_in, cfg.device
    m, k = cfg.target_case
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, d, device=device, generator=g)
    W_enc = torch.randn(d, m, device=device, generator=g) / d**0.5
    W_dec = torch.randn(m, d, device=device, generator=g) / d**0.5
    b_enc = torch.randn(m, device=device, generator=g) * 0.1 - 0.05
    b_dec = torch.randn(d, device=device, generator=g) * 0.1
    dead = torch.randperm(m, device=device, generator=g)[: int(cfg.dead_fraction * m)].sort().values
    k_total = n * k
    with tf32_products(False):  # the references in IEEE fp32
        pre = encode_select_reference.encode(x, W_enc, b_enc, b_dec)
    checks = _selection_checks(pre, k_total)
    checks += _encode_select_checks(x, W_enc, b_enc, b_dec, k_total, dead, min(cfg.aux_k, dead.numel()), cfg.tf32)
    codes = select_reference.batch_topk_select(pre, k_total)
    del pre
    widths = torch.tensor([m // 8, m // 4, m // 2, m], dtype=torch.int64, device=device)
    checks += _product_checks(codes, x, W_enc, b_enc, b_dec, W_dec, widths)
    m1, m0, d_cos = cfg.max_cosine_shape
    checks.append(_max_cosine_check(min(m1, 16384), min(m0, 8192), d_cos, device))
    return {"params": {"n": n, "m": m, "k": k, "d": d}, "targets": checks}
