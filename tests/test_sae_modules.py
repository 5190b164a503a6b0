"""Semantics of the SAE modules: selection, theta, aux loss, gradients, decoder constraints, config."""

import pytest
import torch
from dense_peer import dense_aux_loss, dense_peer_loss

import sae_fast
from sae_fast import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE

D_IN, D_SAE = 12, 40


def make(cls, **kw):
    if kw.get("backend") == "dense":  # the dense training path, on the reference ops
        kw = {**kw, "backend": "torch", "dense_training": True}
    defaults = {"k": 3} if cls in (BatchTopKSAE, TopKSAE) else {}
    if cls is ReLUSAE:
        defaults = {"l1_coefficient": 1e-3}
    return cls(D_IN, D_SAE, seed=0, **{**defaults, **kw})


ALL = [BatchTopKSAE, TopKSAE, JumpReLUSAE, ReLUSAE]


@pytest.mark.parametrize("cls", ALL)
def test_shapes_for_2d_and_3d_inputs(cls):
    sae = make(cls)
    x3 = torch.randn(4, 5, D_IN)
    assert sae(x3).shape == x3.shape
    assert sae.encode(x3).shape == (4, 5, D_SAE)
    assert sae.decode(sae.encode(x3)).shape == x3.shape
    out = sae.training_loss(x3)
    assert out.active_counts.shape == (20,)  # tokens, not sequences
    assert out.x_hat.shape == (20, D_IN)
    assert torch.isclose(out.loss, out.mse + out.sparsity_loss + out.aux_loss)


def test_batch_topk_counts_tokens_not_sequences():
    sae = make(BatchTopKSAE, k=3)
    x3 = torch.randn(4, 5, D_IN)
    out = sae.training_loss(x3)
    assert out.codes.nnz == 4 * 5 * 3
    assert out.l0 == pytest.approx(3.0)
    assert torch.equal(out.codes.counts(), out.active_counts)


def test_topk_keeps_k_per_token():
    out = make(TopKSAE, k=5).training_loss(torch.randn(30, D_IN))
    assert torch.all(out.active_counts == 5)


def test_forward_equals_decode_of_encode():
    for cls in ALL:
        sae = make(cls)
        x = torch.randn(16, D_IN)
        assert torch.allclose(sae(x), sae.decode(sae.encode(x)), atol=1e-5)


def test_theta_is_running_mean_of_smallest_kept_and_can_be_frozen():
    sae = make(BatchTopKSAE, k=3, threshold_window=2)
    minima = []
    for _ in range(4):
        out = sae.training_loss(torch.randn(32, D_IN))
        minima.append(float(out.codes.values.min()))
    # exact mean for the first `window` batches, then weight 1/window
    expected = (minima[0] + minima[1]) / 2
    for m in minima[2:]:
        expected += (m - expected) / 2
    assert float(sae.threshold) == pytest.approx(expected, rel=1e-5)
    sae.freeze_threshold()
    sae.training_loss(torch.randn(32, D_IN))
    assert float(sae.threshold) == pytest.approx(expected, rel=1e-5)


def test_eval_without_theta_raises_and_theta_gives_l0_close_to_k():
    torch.manual_seed(1)
    # structured data: sparse combinations of a few directions, so a trained SAE has meaningful minima
    atoms = torch.nn.functional.normalize(torch.randn(60, D_IN), dim=1)

    def batch(n=256):
        coeff = torch.rand(n, 60) * (torch.rand(n, 60) < 0.05)
        return coeff @ atoms + 0.01 * torch.randn(n, D_IN)

    sae = BatchTopKSAE(D_IN, D_SAE, k=4, seed=0, threshold_window=50)
    with pytest.raises(ValueError, match="theta was never estimated"):
        sae.eval().encode(batch())
    sae.train()
    opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    for _ in range(150):
        out = sae.training_loss(batch())
        out.loss.backward()
        sae.remove_parallel_decoder_grad_()
        opt.step()
        opt.zero_grad()
        sae.after_optimizer_step_()
    sae.eval()
    with torch.no_grad():
        l0 = (sae.encode(batch(4096)) > 0).sum(-1).float().mean()
    assert l0 == pytest.approx(4.0, rel=0.25)
    calibrated = sae.recalibrate_threshold([batch() for _ in range(8)])
    assert calibrated > 0


def test_aux_loss_only_with_dead_latents_and_counted_once():
    sae = make(TopKSAE, k=3, aux_k=4, dead_tokens_threshold=10)
    x = torch.randn(32, D_IN)
    assert sae.training_loss(x).aux_loss == 0
    sae.tokens_since_fired[:20] = 100  # force 20 dead latents (some will revive in this batch)
    sae.eval()  # keep counters unchanged
    out = sae.training_loss(x)
    assert out.aux_loss > 0
    assert torch.isclose(out.loss, out.mse + out.aux_loss)
    # the peers' dense aux loss: residual from the top-4 dead pre-activations, no decoder bias
    expected = dense_aux_loss(sae, x, sae.pre_activations(x).detach(), out.x_hat.detach())
    assert torch.isclose(out.aux_loss, expected, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
@pytest.mark.parametrize("matryoshka", [False, True])
def test_training_loss_and_gradients_equal_the_dense_peer_step(backend, matryoshka):
    kw = dict(k=3, aux_k=5, dead_tokens_threshold=5, backend=backend)
    sae = (sae_fast.MatryoshkaBatchTopKSAE(D_IN, D_SAE, matryoshka_widths=[8, D_SAE], seed=0, **kw) if matryoshka
           else make(BatchTopKSAE, **kw))
    sae.tokens_since_fired[::3] = 10  # a third of the latents dead, so the aux term counts
    x = torch.randn(24, D_IN)
    peer_loss, peer_codes = dense_peer_loss(sae, x)  # first: it leaves the dead-latent counters alone
    peer_loss.backward()
    peer_grads = {name: p.grad.clone() for name, p in sae.named_parameters()}
    sae.zero_grad()
    ours = sae.training_loss(x)
    ours.loss.backward()
    assert ours.aux_loss > 0
    torch.testing.assert_close(ours.loss.detach(), peer_loss.detach())
    assert torch.equal(ours.codes.to_dense() > 0, peer_codes > 0)
    for name, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, peer_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_dead_latent_counters_count_tokens():
    sae = make(BatchTopKSAE, k=2, dead_tokens_threshold=50)
    out = sae.training_loss(torch.randn(2, 10, D_IN))
    fired = set(out.codes.latent_indices.tolist())
    for latent in range(D_SAE):
        assert int(sae.tokens_since_fired[latent]) == (0 if latent in fired else 20)


@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE])
def test_sparse_path_gradients_equal_dense_reference_including_aux(cls):
    x = torch.randn(24, D_IN)
    grads = {}
    for backend in ("dense", "torch"):
        sae = make(cls, k=3, aux_k=5, dead_tokens_threshold=5, backend=backend)
        sae.tokens_since_fired[::3] = 10
        out = sae.training_loss(x)
        assert out.aux_loss > 0
        out.loss.backward()
        grads[backend] = {n: p.grad.clone() for n, p in sae.named_parameters()}
        grads[backend]["loss"] = out.loss.detach()
    for name, g in grads["dense"].items():
        assert torch.allclose(g, grads["torch"][name], atol=1e-6), name


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_relu_sparse_path_equals_the_dense_path(backend):
    from sae_fast.kernels import cpu

    if backend == "cpp" and not cpu.is_available():
        pytest.skip("C++ extension not built")
    x = torch.randn(32, D_IN)
    results = {}
    for path in ("dense", backend):
        sae = make(ReLUSAE, l1_coefficient=0.05, backend=path)
        out = sae.training_loss(x)
        assert 0 < float(out.l0) < D_SAE  # some latents off, some on: the sparse path skips work
        out.loss.backward()
        results[path] = {"loss": out.loss.detach(), "l0": out.l0, "sparsity": out.sparsity_loss.detach(),
                         **{n: p.grad.clone() for n, p in sae.named_parameters()}}
    for name, value in results["dense"].items():
        assert torch.allclose(value, results[backend][name], atol=1e-6), name


class _LossOf(torch.nn.Module):
    def __init__(self, sae, x):
        super().__init__()
        self.sae, self.x = sae, x

    def forward(self):
        return self.sae._training_pass(self.sae._tokens(self.x)).loss


@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE, ReLUSAE])
@pytest.mark.parametrize("backend", ["dense", "torch"])
def test_gradients_match_float64_gradcheck(cls, backend):
    # No dead latents here: the aux residual is a deliberate stop-gradient, which finite differences
    # cannot reproduce; its gradients are checked against the dense path above instead.
    kwargs = {"l1_coefficient": 0.1} if cls is ReLUSAE else {"k": 2}
    path = {"dense_training": True} if backend == "dense" else {"backend": backend}
    sae = cls(5, 9, seed=0, dtype=torch.float64, **path, **kwargs)
    loss = _LossOf(sae, torch.randn(6, 5, dtype=torch.float64))
    names = ["sae.W_enc", "sae.b_enc", "sae.W_dec", "sae.b_dec"]
    params = dict(loss.named_parameters())
    inputs = [params[n].detach().clone().requires_grad_(True) for n in names]

    def loss_fn(*tensors):
        return torch.func.functional_call(loss, dict(zip(names, tensors)), ())

    # Selection is piecewise constant; a small eps keeps it fixed, so the numerical gradient is exact.
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-7, atol=1e-6)


def test_jumprelu_pseudo_derivative_of_threshold():
    sae = JumpReLUSAE(D_IN, D_SAE, seed=0, bandwidth=0.5, initial_threshold=0.3, l0_coefficient=1.0)
    x = torch.randn(16, D_IN)
    out = sae.training_loss(x)
    out.sparsity_loss.backward()
    pre = sae.pre_activations(x).detach()
    u = (pre - 0.3) / 0.5
    window = ((u > -0.5) & (u <= 0.5)).float()
    expected = -(1 / 0.5) * window.sum(0) / 16
    assert torch.allclose(sae.threshold.grad, expected, atol=1e-6)


def test_decoder_constraints():
    sae = make(TopKSAE)
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.normalize_decoder_()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(D_SAE), atol=1e-6)
    sae.remove_parallel_decoder_grad_()
    assert torch.allclose((sae.W_dec.grad * sae.W_dec).sum(1), torch.zeros(D_SAE), atol=1e-5)


@pytest.mark.parametrize("cls", ALL)
def test_config_round_trip(cls):
    sae = make(cls)
    clone = sae_fast.SparseAutoencoder.from_config_dict(sae.config_dict())
    assert type(clone) is cls and clone.config_dict() == sae.config_dict()
    clone.load_state_dict(sae.state_dict())
    x = torch.randn(8, D_IN)
    assert torch.equal(clone(x), sae(x))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls", ALL)
def test_bad_inputs_raise_clear_errors(cls):
    sae = make(cls)
    with pytest.raises(ValueError, match="last dimension d_in=12"):
        sae(torch.randn(4, D_IN + 1))
    with pytest.raises(TypeError, match="floating-point"):
        sae(torch.ones(4, D_IN, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        sae([[0.0] * D_IN])
    with pytest.raises(ValueError, match="empty"):
        sae(torch.randn(0, D_IN))
    bad = torch.randn(4, D_IN)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf in 1 token"):
        sae.training_loss(bad)
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="check_finite=False"):
        sae.encode(bad)
    with pytest.raises(ValueError, match="is on meta but the SAE's parameters are on cpu"):
        sae(torch.randn(4, D_IN, device="meta"))
    with pytest.raises(ValueError, match="last dimension d_sae=40"):
        sae.decode(torch.randn(3, D_SAE - 1))


def test_check_finite_switch_skips_the_scan():
    sae = make(TopKSAE, check_finite=False)
    bad = torch.randn(4, D_IN)
    bad[0, 0] = float("nan")
    sae(bad)  # no error: the user opted out of the check


@pytest.mark.parametrize("cls", [BatchTopKSAE, TopKSAE])
def test_bad_k(cls):
    with pytest.raises(ValueError, match="k must be >= 1"):
        cls(D_IN, D_SAE, k=0)
    with pytest.raises(ValueError, match="k must be <= d_sae"):
        cls(D_IN, D_SAE, k=D_SAE + 1)
    with pytest.raises(TypeError, match="k must be an int"):
        cls(D_IN, D_SAE, k=2.5)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="backend must be one of"):
        TopKSAE(D_IN, D_SAE, k=2, backend="cuda-magic")
    with pytest.raises(ValueError, match="l1_coefficient must be"):
        ReLUSAE(D_IN, D_SAE, l1_coefficient=-1.0)
    with pytest.raises(ValueError, match="unknown SAE architecture"):
        sae_fast.SparseAutoencoder.from_config_dict({"architecture": "gated", "d_in": 2, "d_sae": 3})
    with pytest.raises(ValueError, match="theta must be > 0"):
        BatchTopKSAE(D_IN, D_SAE, k=2).set_threshold(0.0)


# ------------------------------------------------------------------------------------ training state
@pytest.mark.parametrize("cls", ALL)
def test_training_state_snapshots_and_restores_the_buffers_training_updates(cls):
    sae = make(cls, dead_tokens_threshold=5)
    sae.training_loss(torch.randn(16, D_IN))
    before = sae.training_state()
    assert set(before) == set(sae.training_state_reductions())
    for name in before:
        getattr(sae, name).add_(1)  # what a failed step might leave behind
    assert all(not torch.equal(before[name], tensor) for name, tensor in sae.training_state().items())
    sae.load_training_state_(before)
    assert all(torch.equal(before[name], tensor) for name, tensor in sae.training_state().items())
    with pytest.raises(ValueError, match="training state must hold exactly"):
        sae.load_training_state_({})


def test_one_shard_merge_reproduces_the_step_and_statistics_name_theta():
    sae = make(BatchTopKSAE)
    start = sae.training_state()
    sae.training_loss(torch.randn(16, D_IN))
    after = sae.training_state()
    sae.merge_training_state_(start, after, 16)
    assert all(torch.equal(after[name], tensor) for name, tensor in sae.training_state().items())
    assert sae.training_statistics() == {"dead_latents": int(sae.dead_latent_mask().sum()),
                                         "threshold": float(sae.threshold)}
    assert set(make(TopKSAE).training_statistics()) == {"dead_latents"}


def test_eval_mode_restores_the_mode_even_on_error():
    from sae_fast.sae.eval_mode import eval_mode

    sae = make(TopKSAE).train()
    with pytest.raises(RuntimeError), eval_mode(sae):
        assert not sae.training
        raise RuntimeError
    assert sae.training
