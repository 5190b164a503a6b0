"""The paper's analyses on the trained family: the convergence study at every milestone, and every
figure at the last one. Each function returns JSON-able numbers; figures are written beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sae_fast.reproduce.config import ReproduceConfig
from sae_fast.reproduce.family import build_sae


def load_family(config: ReproduceConfig, folder: Path) -> dict[str, Any]:
    from sae_fast.io import load_pretrained

    return {spec.name: load_pretrained(folder / spec.name) for spec in config.family}


def family_names(config: ReproduceConfig, family: str = "batchtopk") -> dict[str, str]:
    """The roles of one stitching family's members, plus section 6's other architectures (of the medium size)."""
    s, m, l = config.small, config.medium, config.large
    return {"small": f"{family}_{s}_s0", "small_other": f"{family}_{s}_s1", "medium": f"{family}_{m}_s0",
            "medium_other": f"{family}_{m}_s1", "large": f"{family}_{l}_s0", "batchtopk": f"batchtopk_{m}_s0",
            "relu": f"relu_{m}_s0", "topk": f"topk_{m}_s0", "jumprelu": f"jumprelu_{m}_s0",
            "jumprelu_sweep": f"jumprelu_{m}_sweep_s0"}


@torch.no_grad()
def add_novel_relative_mse_change(small: Any, large: Any, x: torch.Tensor, threshold: float) -> float:
    """Relative MSE change (in the SAEs' normalised space) from adding every novel latent of ``large``."""
    from sae_fast.stitching import StitchedSAE, classify_latents, reconstruction_stats

    novel = classify_latents(small, large, threshold).novel_indices
    before = reconstruction_stats(small, x).mse
    after = reconstruction_stats(StitchedSAE(small, large, torch.arange(small.d_sae), novel).eval(), x).mse
    return (after - before) / before


@torch.no_grad()
def decoder_cos_to_init(config: ReproduceConfig, name: str, sae: Any) -> float:
    """Median cosine between each trained decoder row and its initial direction (how far training moved it)."""
    spec = next(s for s in config.family if s.name == name)
    start = build_sae(spec, sae.d_in, config)
    cos = torch.nn.functional.cosine_similarity(sae.W_dec.double(), start.W_dec.double(), dim=1)
    return float(cos.median())


def pair_statistics(small: Any, medium: Any, x: torch.Tensor, threshold: float) -> dict[str, float]:
    """The stitching statistics of one (small, larger) pair that need no second seed."""
    from sae_fast.evaluation import evaluate
    from sae_fast.stitching import classify_latents

    evaluation = evaluate(medium, x)
    return {
        "novel_fraction": classify_latents(small, medium, threshold).novel_fraction,
        "add_novel_mse_change": add_novel_relative_mse_change(small, medium, x, threshold),
        "heldout_nmse_medium": evaluation.nmse,
        "heldout_normalized_mse_medium": evaluation.normalized_mse,
        "heldout_l0_small": evaluate(small, x).mean_l0,
        "heldout_l0_medium": evaluation.mean_l0,
    }


def convergence_point(config: ReproduceConfig, saes: dict[str, Any], x: torch.Tensor, family: str
                      ) -> dict[str, float]:
    """Every stitching statistic of one family at one snapshot (one column of its convergence study)."""
    from sae_fast.evaluation import evaluate
    from sae_fast.stitching import reconstruction_fraction

    n = family_names(config, family)
    small, medium = saes[n["small"]], saes[n["medium"]]
    return {
        **pair_statistics(small, medium, x, config.threshold),
        "same_size_reconstruction_fraction_small": reconstruction_fraction(
            saes[n["small_other"]], small, config.threshold),
        "same_size_reconstruction_fraction_medium": reconstruction_fraction(
            saes[n["medium_other"]], medium, config.threshold),
        "heldout_l0_large": evaluate(saes[n["large"]], x).mean_l0,
        "decoder_cos_to_init_medium": decoder_cos_to_init(config, n["medium"], medium),
    }


def distinct_tokens_study(config: ReproduceConfig, subset: Path, full: Path, train_rows: int, x: torch.Tensor
                          ) -> dict[str, Any]:
    """The same SAEs after the same steps, trained on ``distinct_rows`` distinct tokens against all of them."""
    from sae_fast.io import load_pretrained

    n = family_names(config, "relu")
    measured = {}
    for label, folder in (("subset", subset), ("full", full)):
        small, medium = (load_pretrained(folder / n[key]) for key in ("small", "medium"))
        measured[label] = pair_statistics(small, medium, x, config.threshold)
    step = config.milestones[0]
    return {"step": step, "tokens_seen": step * config.batch_size,
            "distinct_rows": {"subset": config.distinct_rows, "full": train_rows},
            "passes": {"subset": step * config.batch_size / config.distinct_rows,
                       "full": step * config.batch_size / train_rows},
            **measured}


def stitching_analyses(config: ReproduceConfig, saes: dict[str, Any], x: torch.Tensor, out: Path, family: str
                       ) -> dict[str, Any]:
    """Figs. 4, 5, 10, 11, 14, 16, 18, 19 on one family's final snapshot."""
    from sae_fast.stitching import reconstruction_fraction_matrix
    from sae_fast.stitching.figures import plot_reconstruction_fraction

    n = family_names(config, family)
    pairs = stitching_pairs([(saes[n["small"]], saes[n["medium"]]), (saes[n["medium"]], saes[n["large"]])], x,
                            config.threshold, config.seed, out)
    members = [spec.name for spec in config.stitching_family(family)]
    matrix = reconstruction_fraction_matrix([saes[name] for name in members], members, config.threshold)
    plot_reconstruction_fraction(matrix, out)
    return {**pairs, "reconstruction_fraction_matrix": {"labels": matrix.labels, "fraction": matrix.fraction.tolist()}}


def stitching_pairs(pairs: list[tuple[Any, Any]], x: torch.Tensor, threshold: float, seed: int, out: Path
                    ) -> dict[str, Any]:
    """Figs. 4, 5, 10, 14, 16, 18 for each (small, large) pair, and Fig. 11 for the first pair."""
    from sae_fast.commands.stitch import _figures, stitching_report
    from sae_fast.stitching import StitchingConfig, activation_vs_decoder_similarity, encode_eval_set, novelty_roc
    from sae_fast.stitching.figures import plot_activation_similarity, plot_interpolation

    stitching = StitchingConfig(threshold=threshold, novel_order="random", group_order="random", seed=seed)
    records, paths = {}, {}
    for small, large in pairs:
        label = f"{small.d_sae}_to_{large.d_sae}"
        summary, results = stitching_report(small, large, x, stitching)
        figures = _figures(results, out / label, (f"SAE-{small.d_sae}", f"SAE-{large.d_sae}"), meta={"pair": label})
        add, swap = (results["interpolation"].step_deltas(phase)[0] for phase in ("add_novel", "swap_group"))
        summary["mean_step_delta_mse"] = {"add_novel": float(add.mean()) if add.numel() else None,
                                          "swap_group": float(swap.mean()) if swap.numel() else None}
        try:
            summary["novelty_roc_auc"] = novelty_roc(results["single_latent"]).auc
        except ValueError:  # every firing latent on one side: no ROC curve exists
            summary["novelty_roc_auc"] = None
        summary["figures"] = figures
        records[label] = summary
        paths[f"SAE-{small.d_sae} to SAE-{large.d_sae}"] = results["interpolation"]
    plot_interpolation(paths, out, stem="fig5_interpolation_family")

    small, large = pairs[0]
    similarity = activation_vs_decoder_similarity(small, large, encode_eval_set(small, large, x))
    plot_activation_similarity(similarity, out)
    return {
        "pairs": records,
        "activation_vs_decoder": {"r_squared": similarity.r2, "min_decoder_cos": similarity.min_decoder_cos,
                                  "n_pairs": similarity.n_pairs_in_r2},
    }


def architecture_comparison(config: ReproduceConfig, saes: dict[str, Any], x: torch.Tensor, reader: Any,
                            out: Path) -> dict[str, Any]:
    """Section 6 (Figs. 7-9 at k=32): BatchTopK, TopK and JumpReLU (the paper's penalty and a second one) of one
    size on held-out tokens, with CE; the ReLU/L1 SAE of that size beside them."""
    from dataclasses import replace

    from sae_fast.evaluation import EvalConfig, evaluate
    from sae_fast.report import _plot_l0_histograms

    n = family_names(config)
    model = tokens = None
    if config.ce_sequences:
        from sae_fast.commands.models import load_model_by_name

        model = load_model_by_name(config.model, "cpu")
        tokens = torch.from_numpy(reader.tokens[: config.ce_sequences].astype("int64"))
    eval_config = EvalConfig(model=model, tokens=tokens, hook_name=config.hook_name,
                             first_position=reader.first_position) if model is not None else EvalConfig()
    results = {}
    for label in ("batchtopk", "topk", "jumprelu", "jumprelu_sweep", "relu"):
        name = n[label]
        result = evaluate(saes[name], x, eval_config)
        if model is not None:  # the clean and ablated losses do not depend on the SAE: measure them once
            eval_config = replace(eval_config, reference_losses=result)
        results[name] = result
    _plot_l0_histograms(results, out / "fig9_l0_histograms.png")
    return {name: {key: value for key, value in r.to_dict().items() if key != "l0_histogram"}
            | {"l0_std": _l0_std(r.l0_histogram)} | _coefficient(saes[name]) for name, r in results.items()}


def _coefficient(sae: Any) -> dict[str, float]:
    """The penalty coefficient an L1/L0-penalised SAE ended training with, if it was steered to a target L0."""
    return sae.coefficient_statistics() if getattr(sae, "target_l0", None) is not None else {}


def _l0_std(histogram: list[int]) -> float:
    counts = torch.tensor(histogram, dtype=torch.float64)
    levels = torch.arange(counts.numel(), dtype=torch.float64)
    mean = float((levels * counts).sum() / counts.sum())
    return float(((levels - mean).pow(2) * counts).sum() / counts.sum()) ** 0.5


def meta_analyses(config: ReproduceConfig, saes: dict[str, Any], out: Path) -> dict[str, Any]:
    """Section 5 (Figs. 6 and 23): a meta-SAE on the decoder rows of the ReLU/L1 family's largest SAE (the paper
    decomposes GPT2-49152 of that family)."""
    from sae_fast.io import save_pretrained
    from sae_fast.meta import MetaSAEConfig, compare_with_saes, decoder_substitution, plot_meta_report, train_meta_sae

    n = family_names(config, "relu")
    large = saes[n["large"]]
    meta_config = MetaSAEConfig(n_meta_latents=config.n_meta_latents, k=config.meta_k, epochs=config.meta_epochs,
                                train={"batch_size": large.d_sae, "seed": config.seed, "progress": config.progress})
    result = train_meta_sae(large, meta_config)
    save_pretrained(result.meta_sae, out / "meta_sae")
    references = {f"SAE-{saes[n[key]].d_sae}": saes[n[key]] for key in ("small", "medium", "large")}
    distributions = compare_with_saes(result.meta_sae, references)
    substitution = decoder_substitution(result.meta_sae, result.rows, saes[n["small"]], meta_config,
                                        retrain_epochs=max(1, config.meta_epochs // 4), seed=config.seed)
    plot_meta_report(out / "fig6_fig23_meta_sae.png", distributions, substitution)
    return {
        "summary": result.summary(),
        "max_cosine": {name: d.summary() for name, d in distributions.items()},
        "substitution": {"reference": f"SAE-{saes[n['small']].d_sae}",
                         "fve_original": substitution.fve_original,
                         "fve_original_retrained": substitution.fve_original_retrained,
                         "fve_substituted": substitution.fve_substituted, "fve_random": substitution.fve_random},
    }
