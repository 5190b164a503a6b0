"""The SAE modules give the same loss, codes and gradients on every backend (torch, cpp, triton) as the
dense training path (``dense_training=True``), the peers' path and the reference."""

import pytest
import torch

from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE, TopKSAE, block_decode
from sae_fast.kernels import cpu

BACKENDS = ["torch", "cpp", "triton"]


def _run(cls, backend, x, dead_every=3, **kw):
    path = {"dense_training": True} if backend == "dense" else {"backend": backend}
    sae = cls(x.shape[-1], 40, k=3, seed=0, dead_tokens_threshold=5, aux_k=6, **path, **kw)
    sae.tokens_since_fired[::dead_every] = 10  # some latents dead: exercises the aux path
    x = x.clone().requires_grad_()  # the input gradient has its own backward path
    out = sae.training_loss(x)
    out.loss.backward()
    return sae, out, x.grad


# dead_every=3: a third of the latents dead; 10: few enough that Triton's fused encoder copies
# the dead columns to a compact buffer instead of reading them in place.
# Matryoshka: the dense path decodes each prefix densely; a width of 1 and levels some tokens skip.
MATRYOSHKA = {"matryoshka_widths": [1, 10, 24, 40]}


@pytest.mark.parametrize("cls,dead_every,kw", [
    (BatchTopKSAE, 3, {}), (TopKSAE, 3, {}), (BatchTopKSAE, 10, {}), (MatryoshkaBatchTopKSAE, 3, MATRYOSHKA),
])  # fmt: skip
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_step_matches_dense_reference(cls, dead_every, kw, backend):
    if backend == "cpp" and not cpu.is_available():
        pytest.fail("the C++ extension sae_fast._C is not built; run `pip install -e .`")
    x = torch.randn(2, 9, 8)  # 18 tokens: not a multiple of any block
    ref_sae, ref, ref_x_grad = _run(cls, "dense", x, dead_every, **kw)
    sae, out, x_grad = _run(cls, backend, x, dead_every, **kw)
    assert torch.allclose(x_grad, ref_x_grad, atol=1e-6)
    assert out.aux_loss > 0
    assert torch.equal(out.codes.row_offsets, ref.codes.row_offsets)
    assert torch.equal(out.codes.latent_indices, ref.codes.latent_indices)
    assert torch.allclose(out.loss, ref.loss, atol=1e-6)
    if ref.nested_mse is not None:
        assert torch.allclose(out.nested_mse, ref.nested_mse, atol=1e-6)
    for (name, p), q in zip(sae.named_parameters(), ref_sae.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    if issubclass(cls, BatchTopKSAE):
        assert torch.equal(sae.threshold, ref_sae.threshold)
    assert torch.equal(sae.tokens_since_fired, ref_sae.tokens_since_fired)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_mode_forward_matches(backend):
    x = torch.randn(18, 8)
    ref = BatchTopKSAE(8, 40, k=3, seed=1, dense_training=True)
    ref.set_threshold(0.2)
    sae = BatchTopKSAE(8, 40, k=3, seed=1, backend=backend)
    sae.set_threshold(0.2)
    ref.eval(), sae.eval()
    with torch.no_grad():
        assert torch.allclose(sae(x), ref(x), atol=1e-6)
    assert torch.allclose(sae(x), ref(x), atol=1e-6)  # differentiable path too


@pytest.mark.parametrize("min_density", [0.0, 2.0], ids=["dense-block-aux", "sparse-aux"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_both_aux_paths_match_dense_reference(backend, min_density, monkeypatch):
    # The aux decode switches between dense products on the dead block and the sparse products by
    # density: force each in turn (a dead-latent share and aux_k where either could be chosen).
    monkeypatch.setattr(block_decode, "DENSE_BLOCK_MIN_DENSITY", min_density)
    x = torch.randn(30, 8)
    ref_sae, ref, ref_x_grad = _run(BatchTopKSAE, "dense", x, dead_every=2)
    sae, out, x_grad = _run(BatchTopKSAE, backend, x, dead_every=2)
    assert out.aux_loss > 0
    assert torch.allclose(out.aux_loss, ref.aux_loss, atol=1e-6)
    assert torch.allclose(x_grad, ref_x_grad, atol=1e-6)
    for (name, p), q in zip(sae.named_parameters(), ref_sae.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
