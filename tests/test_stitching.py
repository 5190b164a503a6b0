"""Stitching: swap groups, StitchedSAE identities, incremental path vs recomputation, analyses."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest
import torch

from sae_fast import BatchTopKSAE, TopKSAE
from sae_fast.stitching import (
    IncrementalStitchedError,
    StitchedSAE,
    StitchingConfig,
    activation_vs_decoder_similarity,
    classify_latents,
    encode_eval_set,
    find_swap_groups,
    interpolation_path,
    max_cosine_histogram,
    novel_latent_mse,
    novelty_roc,
    r_squared,
    reconstruction_fraction,
    reconstruction_fraction_matrix,
    reconstruction_stats,
    roc_curve,
    single_latent_insertion_effects,
)

D = 24


def _pair(dtype=torch.float64, arch="topk", normalize="none"):
    """A small SAE and a larger one sharing perturbed copies of some directions (so there are groups)."""
    g = torch.Generator().manual_seed(0)
    norm = {"dtype": dtype, "normalize_activations": normalize}
    if arch == "topk":
        small, large = TopKSAE(D, 40, 4, seed=1, **norm), TopKSAE(D, 80, 5, seed=2, **norm)
    else:
        small, large = BatchTopKSAE(D, 40, 4, seed=1, **norm), BatchTopKSAE(D, 80, 5, seed=2, **norm)
        small.set_threshold(0.05)
        large.set_threshold(0.05)
    with torch.no_grad():
        base = small.W_dec[:30]
        large.W_dec[:30] = base + 0.15 * torch.randn(30, D, generator=g, dtype=dtype)
        large.W_dec[30:40] = base[:10] + 0.25 * torch.randn(10, D, generator=g, dtype=dtype)  # splits
        large.W_dec[40:45] = base[10:15] + base[15:20]  # compositions, joined to two small latents
        large.normalize_decoder_()
        large.W_enc.copy_(large.W_dec.T)
        small.b_dec.copy_(torch.randn(D, generator=g, dtype=dtype))
        large.b_dec.copy_(small.b_dec + 0.3 * torch.randn(D, generator=g, dtype=dtype))
    x = torch.randn(400, D, generator=g, dtype=dtype) * 2 + small.b_dec
    return small.eval(), large.eval(), x


def _bfs_labels(n, edges):
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    labels = [-1] * n
    for s in range(n):
        if labels[s] >= 0:
            continue
        comp, queue = [s], deque([s])
        labels[s] = s
        while queue:
            for nb in adj[queue.popleft()]:
                if labels[nb] < 0:
                    labels[nb] = s
                    comp.append(nb)
                    queue.append(nb)
        # s is the smallest unvisited node, hence the smallest member of its component
    return labels


# ---------------------------------------------------------------- classification and groups
def test_groups_are_components_of_thresholded_graph():
    small, large, _ = _pair()
    theta = 0.7
    groups = find_swap_groups(small, large, theta)
    cls = classify_latents(small, large, theta)
    W0 = small.W_dec / small.W_dec.norm(dim=1, keepdim=True)
    W1 = large.W_dec / large.W_dec.norm(dim=1, keepdim=True)
    cos = W1 @ W0.T
    edges = [(int(a), 40 + int(b)) for b, a in (cos >= theta).nonzero().tolist()]
    labels = _bfs_labels(120, edges)
    expected = {}
    for node in range(120):
        expected.setdefault(labels[node], []).append(node)
    expected_groups = sorted(
        (sorted(v for v in comp if v < 40), sorted(v - 40 for v in comp if v >= 40))
        for comp in expected.values() if len(comp) > 1
    )
    got = sorted((g.small.tolist(), g.large.tolist()) for g in groups.groups)
    assert got == expected_groups
    assert len(got) > 3 and any(len(s) >= 2 for s, _ in got)  # the compositions join two small latents
    assert torch.equal(groups.novel, cls.novel_indices)
    assert torch.equal(cls.novel_mask, cos.max(dim=1).values < theta)


# ---------------------------------------------------------------- StitchedSAE
@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_stitched_endpoints_equal_the_saes(arch):
    small, large, x = _pair(arch=arch)
    s_all = StitchedSAE(small, large, torch.arange(40), None).eval()
    l_all = StitchedSAE(small, large, None, torch.arange(80)).eval()
    # The SAEs' own sparse forward may run fp32 C++ kernels; their dense decode is exact fp64.
    torch.testing.assert_close(s_all(x), small.decode(small.encode(x)), rtol=0, atol=1e-12)
    torch.testing.assert_close(l_all(x), large.decode(large.encode(x)), rtol=0, atol=1e-12)
    torch.testing.assert_close(s_all(x), small(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s_all.encode(x), small.encode(x))
    torch.testing.assert_close(l_all.decode(l_all.encode(x)), large.decode(large.encode(x)), rtol=0, atol=1e-12)
    assert s_all.alpha == 1.0 and l_all.alpha == 0.0


def test_stitched_matches_equation_5():
    small, large, x = _pair()
    L0, L1 = torch.tensor([3, 0, 17]), torch.tensor([5, 60, 2, 79])
    sae = StitchedSAE(small, large, L0, L1)
    f0, f1 = small.encode(x), large.encode(x)
    a = 3 / 7
    expected = a * small.b_dec + (1 - a) * large.b_dec + f0[:, L0] @ small.W_dec[L0] + f1[:, L1] @ large.W_dec[L1]
    torch.testing.assert_close(sae(x), expected)
    codes = sae.encode_sparse(x)
    torch.testing.assert_close(codes.to_dense(), sae.encode(x))
    for name, args in [("repeat", ([1, 1], None)), ("range", ([40], None)), ("empty", (None, None))]:
        with pytest.raises(ValueError):
            StitchedSAE(small, large, *args)


# ---------------------------------------------------------------- incremental interpolation
@torch.no_grad()
@pytest.mark.parametrize("normalize", ["none", "layer_norm"])
def test_interpolation_path_equals_recomputation_at_every_step(normalize):
    small, large, x = _pair(normalize=normalize)
    target = small.normalize_inputs(x)  # stitching measures MSE in the SAEs' shared normalised space
    config = StitchingConfig(threshold=0.7, novel_order="random", group_order="random", remove_unmatched_small=True)
    groups = find_swap_groups(small, large, config.threshold)
    path = interpolation_path(small, large, x, config, groups=groups)
    assert path.phase[0] == "start" and path.n_novel == groups.novel.numel() > 0
    assert len(path.mse) == 1 + path.n_novel + path.n_groups + groups.unmatched_small.numel()
    # Replay the path from the recorded items and recompute each step from scratch with eq. 5.
    f0, f1 = small.encode(x).detach(), large.encode(x).detach()
    L0, L1 = set(range(40)), set()
    for step, (phase, item) in enumerate(zip(path.phase, path.item)):
        if phase == "add_novel":
            L1.add(item)
        elif phase == "swap_group":
            L1.update(groups.groups[item].large.tolist())
            L0.difference_update(groups.groups[item].small.tolist())
        elif phase == "remove_unmatched":
            L0.discard(item)
        i0, i1 = sorted(L0), sorted(L1)
        a = len(i0) / (len(i0) + len(i1))
        x_hat = (a * small.b_dec + (1 - a) * large.b_dec + f0[:, i0] @ small.W_dec[i0] + f1[:, i1] @ large.W_dec[i1])
        mse = float((x_hat - target).pow(2).mean())
        l0 = (int((f0[:, i0] > 0).sum()) + int((f1[:, i1] > 0).sum())) / x.shape[0]
        assert path.n_features[step] == len(i0) + len(i1)
        assert path.mse[step] == pytest.approx(mse, rel=1e-10, abs=1e-12), step
        assert path.l0[step] == pytest.approx(l0, rel=1e-12), step
        if step in (1, len(path.phase) // 2):  # and through the StitchedSAE module
            truth = reconstruction_stats(StitchedSAE(small, large, i0, i1).eval(), x)
            assert path.mse[step] == pytest.approx(truth.mse, rel=1e-10) and path.l0[step] == truth.l0
    assert path.mse[0] == pytest.approx(reconstruction_stats(small, x).mse, rel=1e-6)
    assert path.mse[-1] == pytest.approx(reconstruction_stats(large, x).mse, rel=1e-6)
    assert path.large_mse == pytest.approx(path.mse[-1], rel=1e-10)
    d_mse, _ = path.step_deltas("add_novel")
    assert d_mse.numel() == path.n_novel


def test_incremental_rejects_double_add():
    small, large, x = _pair()
    state = IncrementalStitchedError(encode_eval_set(small, large, x), small.W_dec, small.b_dec, large.W_dec, large.b_dec)
    state.change(1, torch.tensor([3]), add=True)
    with pytest.raises(ValueError):
        state.change(1, torch.tensor([3]), add=True)
    with pytest.raises(ValueError):
        state.change(0, torch.arange(40), add=False) or state.change(1, torch.tensor([3]), add=False)


# ---------------------------------------------------------------- analyses
def test_single_latent_effects_equal_recomputation():
    small, large, x = _pair()
    effects = single_latent_insertion_effects(small, large, x)
    base = reconstruction_stats(StitchedSAE(small, large, torch.arange(40)).eval(), x).mse
    assert effects.small_mse == pytest.approx(base, rel=1e-10)
    for j in [0, 7, 31, 42, 44, 60, 79]:
        mse = reconstruction_stats(StitchedSAE(small, large, torch.arange(40), [j]).eval(), x).mse
        assert float(effects.delta_mse[j]) == pytest.approx(mse - base, rel=1e-8, abs=1e-12), j


def _mann_whitney_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    for n in [2, 10, 57]:
        scores = torch.randint(0, 6, (n,), generator=g).double()  # many ties
        labels = torch.arange(n) % 2 == 0
        fpr, tpr, thr, auc = roc_curve(scores, labels)
        assert auc == pytest.approx(_mann_whitney_auc(scores.tolist(), labels.tolist()), abs=1e-12)
        assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
        assert torch.all(fpr[1:] >= fpr[:-1]) and torch.all(tpr[1:] >= tpr[:-1])
    with pytest.raises(ValueError):
        roc_curve(torch.ones(3), torch.ones(3, dtype=torch.bool))


def test_novelty_roc_on_sae_pair():
    small, large, x = _pair()
    effects = single_latent_insertion_effects(small, large, x)
    roc = novelty_roc(effects)
    keep = effects.firing_counts > 0
    assert roc.auc == pytest.approx(
        _mann_whitney_auc((-effects.max_cos[keep]).tolist(), (effects.delta_mse[keep] < 0).tolist()), abs=1e-12
    )
    assert roc.n_positive + roc.n_negative == int(keep.sum())


@torch.no_grad()
def test_novel_latent_mse_brute_force():
    small, large, x = _pair()
    result = novel_latent_mse(small, large, x, 0.7)
    err0 = (small.decode(small.encode(x)) - x).pow(2).mean(dim=1)
    f1 = large.encode(x)
    assert result.latents.numel() > 0
    for pos, j in enumerate(result.latents.tolist()):
        active = f1[:, j] > 0
        assert float(result.small_active[pos]) == pytest.approx(float(err0[active].mean()), rel=1e-10)
        assert float(result.small_inactive[pos]) == pytest.approx(float(err0[~active].mean()), rel=1e-10)


@torch.no_grad()
def test_activation_similarity_brute_force():
    small, large, x = _pair()
    result = activation_vs_decoder_similarity(small, large, x, min_decoder_cos=0.5)
    f0, f1 = small.encode(x), large.encode(x)
    for pos, (j, p) in enumerate(zip(result.latents.tolist(), result.partners.tolist())):
        a, b = f1[:, j], f0[:, p]
        assert float(result.activation_cos[pos]) == pytest.approx(float(a @ b / (a.norm() * b.norm())), rel=1e-9, abs=1e-12)
    high = result.decoder_cos > 0.5
    r = np.corrcoef(result.decoder_cos[high].numpy(), result.activation_cos[high].numpy())[0, 1]
    assert result.r2 == pytest.approx(r**2, rel=1e-9)
    assert r_squared(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])) == pytest.approx(1.0)


def test_histogram_and_fraction_matrix():
    small, large, _ = _pair()
    hist = max_cosine_histogram(small, large, 0.7, bins=20)
    assert int(hist.counts.sum()) == 80
    cls = classify_latents(small, large, 0.7)
    assert hist.n_novel == int(cls.novel_mask.sum())
    other = TopKSAE(D, 40, 4, seed=9, dtype=torch.float64)
    m = reconstruction_fraction_matrix([small, other, large], ["s", "o", "l"], 0.7)
    assert torch.allclose(m.fraction.diagonal(), torch.ones(3, dtype=torch.float64))
    assert m.fraction[2, 0] == pytest.approx(1.0 - cls.novel_fraction)
    W0 = small.W_dec / small.W_dec.norm(dim=1, keepdim=True)
    W1 = large.W_dec / large.W_dec.norm(dim=1, keepdim=True)
    assert m.fraction[0, 2] == pytest.approx(float(((W0 @ W1.T).max(dim=1).values >= 0.7).double().mean()))


def test_every_entry_point_takes_a_stitching_config():
    small, large, x = _pair()
    config = StitchingConfig(threshold=0.5, encode_batch_size=7, min_decoder_cos=0.3)
    by_config = classify_latents(small, large, config)
    assert by_config.threshold == 0.5
    # a bare number is the threshold (what these functions took before), keywords replace config fields
    assert torch.equal(classify_latents(small, large, 0.5).novel_mask, by_config.novel_mask)
    assert torch.equal(classify_latents(small, large, threshold=0.5).novel_mask, by_config.novel_mask)
    assert classify_latents(small, large, config, threshold=0.9).threshold == 0.9
    assert reconstruction_fraction(large, small, config) == pytest.approx(1.0 - by_config.novel_fraction)
    assert find_swap_groups(small, large, config).threshold == 0.5
    assert max_cosine_histogram(small, large, config, bins=10).n_novel == int(by_config.novel_mask.sum())
    assert reconstruction_fraction_matrix([small, large], None, config).threshold == 0.5
    assert novel_latent_mse(small, large, x, config).threshold == 0.5
    assert single_latent_insertion_effects(small, large, x, config).threshold == 0.5
    assert activation_vs_decoder_similarity(small, large, x, config).min_decoder_cos == 0.3
    path = interpolation_path(small, large, x, config)
    assert path.n_novel == int(by_config.novel_mask.sum())
    encoded = encode_eval_set(small, large, x, config)
    same = encode_eval_set(small, large, x, 7)  # a bare number is the encoder batch size here
    old_keyword = encode_eval_set(small, large, x, batch_size=7)
    for other in (same, old_keyword):
        assert torch.equal(other.large_codes.latent_indices, encoded.large_codes.latent_indices)
    with pytest.raises(TypeError, match="unknown stitching keyword.*'treshold'"):
        classify_latents(small, large, treshold=0.5)
    with pytest.raises(TypeError, match="StitchingConfig"):
        find_swap_groups(small, large, "0.5")
    with pytest.raises(ValueError, match="cosine"):
        classify_latents(small, large, 1.5)
