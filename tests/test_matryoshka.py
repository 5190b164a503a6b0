"""Matryoshka BatchTopK SAEs: the nested loss, its sparse backward on every backend, files and the CLI spec."""

from __future__ import annotations

import json

import pytest
import torch
from dense_peer import dense_batch_topk_codes, dense_prefix_mses

import sae_fast
from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE
from sae_fast.autograd import nested_sparse_decode
from sae_fast.cli import build_saes, parse_sae_spec
from sae_fast.kernels import cpu, select_reference
from sae_fast.kernels import sparse_decode_reference as ref
from sae_fast.kernels.dispatch import kernel_ops
from sae_fast.sparse_codes import SparseCodes

WIDTHS = [4, 12, 30, 48]


def make_sae(backend="auto", **kw) -> MatryoshkaBatchTopKSAE:
    path = {"dense_training": True} if backend == "dense" else {"backend": backend}
    sae = MatryoshkaBatchTopKSAE(16, 48, 3, matryoshka_widths=WIDTHS, seed=0, **path, **kw)
    with torch.no_grad():  # non-zero biases, so the by-hand computation checks where they enter
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    return sae


@pytest.mark.parametrize("normalize", ["none", "layer_norm"])
@pytest.mark.parametrize("backend", ["dense", "torch", "cpp"])
def test_loss_is_the_sum_of_prefix_mses_computed_by_hand(backend, normalize):
    sae = make_sae(backend=backend, normalize_activations=normalize)
    x = torch.randn(2, 10, 16) * 2
    out = sae.training_loss(x)
    with torch.no_grad():
        tokens = out.target
        if normalize == "none":
            assert torch.equal(tokens, x.reshape(-1, 16))
        _, f = dense_batch_topk_codes(sae, tokens)
        x_hat, prefix_mses = dense_prefix_mses(sae, tokens, f)
        prefix_mses = torch.stack(prefix_mses)
    torch.testing.assert_close(out.nested_mse, prefix_mses)
    torch.testing.assert_close(out.loss, prefix_mses.sum())  # nothing is dead yet: no aux term
    torch.testing.assert_close(out.mse, prefix_mses[-1])
    torch.testing.assert_close(out.x_hat, x_hat)


def _nested_case(seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    pre = torch.relu(torch.randn(13, 30, generator=g))
    pre[2::5] = 0  # tokens with no latent at all
    codes = select_reference.batch_topk_select(pre, 13 * 4)
    codes = codes.with_values(codes.values.to(dtype))
    W, b = torch.randn(30, 9, generator=g).to(dtype), torch.randn(9, generator=g).to(dtype)
    weights = torch.randn(4, 13, 9, generator=g)  # a different loss weight per level, token and dim
    return codes, W, b, torch.tensor([2, 7, 21, 30]), weights


def _gradients(codes: SparseCodes, W, b, widths, weights, decode):
    values, W, b = (t.detach().clone().requires_grad_() for t in (codes.values, W, b))
    out = decode(codes.with_values(values), W, b, widths)
    (out.float() * weights).sum().backward()
    return out, values.grad, W.grad, b.grad


@pytest.mark.parametrize("backend", ["torch", "cpp", "triton"])
def test_nested_decode_backward_matches_autograd_of_the_reference(backend):
    ops = kernel_ops(torch.device("cpu"), backend)
    for seed in range(3):
        case = _nested_case(seed)
        want = _gradients(*case, ref.nested_sparse_decode)
        got = _gradients(*case, lambda c, W, b, w: nested_sparse_decode(c, W, b, w, ops))
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_level_split_keeps_entries_and_orders_rows_by_token_then_level():
    codes, _, _, widths, _ = _nested_case(0)
    split = ref.split_rows_by_level(codes, widths)
    assert split.n_tokens == codes.n_tokens * 4 and torch.equal(split.latent_indices, codes.latent_indices)
    levels = torch.bucketize(split.latent_indices, widths, right=True)
    assert torch.equal(split.token_indices(), codes.token_indices() * 4 + levels)


@pytest.mark.parametrize("widths,error,message", [
    ([12, 4, 48], ValueError, "strictly increasing"), ([4, 4, 48], ValueError, "strictly increasing"),
    ([0, 48], ValueError, "positive"), ([4, 12], ValueError, "must be d_sae=48"), ([], TypeError, "non-empty"),
    ("4;48", TypeError, "list of ints"), ([4.0, 48], TypeError, "hold ints"), ([4, 48, 96], ValueError, "d_sae=48"),
])  # fmt: skip
def test_widths_are_validated_with_clear_errors(widths, error, message):
    with pytest.raises(error, match=message):
        MatryoshkaBatchTopKSAE(16, 48, 3, matryoshka_widths=widths)


def _trained(steps: int = 3) -> MatryoshkaBatchTopKSAE:
    sae = make_sae(backend="torch")
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    for _ in range(steps):
        sae.training_loss(torch.randn(64, 16)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        sae.after_optimizer_step_()
    return sae.eval()


def test_eval_mode_is_batch_topk_with_its_threshold():
    sae = _trained()
    plain = BatchTopKSAE(16, 48, 3, seed=0, backend="torch")
    plain.load_state_dict(sae.state_dict())
    plain.eval()
    x = torch.randn(20, 16)
    assert float(sae.threshold) > 0
    assert torch.equal(sae(x), plain(x))
    assert torch.equal(sae.encode(x), torch.relu(sae.pre_activations(x)) * (sae.pre_activations(x) > sae.threshold))


def test_save_load_round_trip_and_saelens_files(tmp_path):
    sae = _trained()
    x = torch.randn(20, 16)
    sae_fast.save_pretrained(sae, tmp_path / "m")
    loaded = sae_fast.load_pretrained(tmp_path / "m", backend="torch")
    assert type(loaded) is MatryoshkaBatchTopKSAE and loaded.matryoshka_widths == tuple(WIDTHS)
    assert loaded.config_dict() == sae.config_dict()
    for key, tensor in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert torch.equal(loaded(x), sae(x))

    cfg = json.loads((tmp_path / "m" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"  # what SAELens loads for inference, as its own Matryoshka saves
    assert cfg["metadata"]["training_architecture"] == "matryoshka_batchtopk"
    assert cfg["metadata"]["training_architecture_details"] == {"k": 3, "matryoshka_widths": WIDTHS}
    # Without sae_fast's additions (a folder as SAELens writes it) the metadata still restores the module.
    del cfg["sae_fast"]
    (tmp_path / "m" / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "m" / "sae_fast_state.safetensors").unlink()
    bare = sae_fast.load_pretrained(tmp_path / "m", backend="torch")
    assert type(bare) is MatryoshkaBatchTopKSAE and bare.matryoshka_widths == tuple(WIDTHS)
    assert torch.equal(bare(x), sae(x))


def test_cli_spec_lists_and_build():
    spec = "m=matryoshka_batchtopk:d_sae=3072,k=32,matryoshka_widths=768;1536;3072"
    assert parse_sae_spec(spec) == (
        "m", {"architecture": "matryoshka_batchtopk", "d_sae": 3072, "k": 32, "matryoshka_widths": [768, 1536, 3072]}
    )
    assert parse_sae_spec("a=relu:x=1;2.5;yes")[1]["x"] == [1, 2.5, "yes"]
    (sae,) = build_saes(["m=matryoshka_batchtopk:d_sae=48,k=3,matryoshka_widths=4;48"], d_in=16, seed=0).values()
    assert isinstance(sae, MatryoshkaBatchTopKSAE) and sae.matryoshka_widths == (4, 48)
    with pytest.raises(ValueError, match="must be d_sae=48"):
        build_saes(["m=matryoshka_batchtopk:d_sae=48,k=3,matryoshka_widths=4;40"], d_in=16, seed=0)


def test_widths_follow_the_module_to_another_dtype_and_back():
    sae = make_sae(backend="cpp" if cpu.is_available() else "torch").to(torch.float64)
    assert sae._level_widths.dtype == torch.int64
    assert sae.training_loss(torch.randn(8, 16, dtype=torch.float64)).nested_mse.shape == (4,)
