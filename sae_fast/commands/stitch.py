"""``sae-fast stitch``: the paper's stitching analyses (section 4) of a small and a large SAE on one
activation cache, as one JSON record plus the figures the stitching library draws.

Both SAEs encode the evaluation tokens once; every analysis reuses that encoding and the one swap-group
graph. Recorded: the max-cosine classification of the large SAE's latents into novel / reconstruction at
the threshold (Fig. 10), the MSE after adding all novel latents to the small SAE (Fig. 5's first phase,
Fig. 18), the whole Fig. 5 interpolation path, each latent's MSE change when inserted alone and how well
max cosine predicts its sign (Figs. 4, 16), and the MSE on tokens where novel latents fire (Fig. 14).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STITCH_RESULT = "stitch.json"


def add_stitch_arguments(parser: argparse.ArgumentParser) -> None:
    from sae_fast.commands.arguments import add_dataclass_arguments, int_at_least
    from sae_fast.commands.inputs import ACTIVATIONS_HELP, SAE_HELP, add_stream_arguments
    from sae_fast.commands.provenance import add_provenance_flag
    from sae_fast.stitching import StitchingConfig

    parser.add_argument("--small", required=True, help="the smaller SAE: " + SAE_HELP)
    parser.add_argument("--large", required=True,
                        help="the larger SAE, trained on the same activations: " + SAE_HELP)
    parser.add_argument("--cache", default=None,
                        help=ACTIVATIONS_HELP + "; without it, activations are streamed from the model the SAEs "
                             "were trained on (the --model/--texts/--hook-name/--seq-len flags, each defaulting to "
                             "what the SAEs' configs record)")
    add_stream_arguments(parser)
    parser.add_argument("--out", required=True, help=f"folder for {STITCH_RESULT} and the figures")
    parser.add_argument("--max-tokens", type=int_at_least(1), default=32768, help="evaluation tokens (default: %(default)s)")
    parser.add_argument("--bins", type=int_at_least(1), default=50, help="bins of the max-cosine histogram (Fig. 10)")
    parser.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                        help="also draw the PNG figures (Figs. 4, 5, 10, 14, 16), each with its JSON")
    parser.add_argument("--device", default="cpu", help="device for the SAEs")
    add_provenance_flag(parser)
    add_dataclass_arguments(parser, StitchingConfig, skip=("block_size",))


def stitching_report(
    small: Any, large: Any, x: Any, config: Any, bins: int = 50,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON summary of every analysis, and the full results (for the figures)."""
    from sae_fast.stitching import (
        classify_latents, encode_eval_set, find_swap_groups, interpolation_path, max_cosine_histogram,
        novel_latent_mse, single_latent_insertion_effects,
    )

    encoded = encode_eval_set(small, large, x, config)
    classification = classify_latents(small, large, config)
    groups = find_swap_groups(small, large, config)
    path = interpolation_path(small, large, encoded, config, groups=groups)
    effects = single_latent_insertion_effects(small, large, encoded, config)
    results = {
        "histogram": max_cosine_histogram(small, large, config, bins=bins),
        "interpolation": path,
        "single_latent": effects,
        "novel_latent_mse": novel_latent_mse(small, large, encoded, config),
    }
    added = [i for i, phase in enumerate(path.phase) if phase == "add_novel"]
    after_novel = path.mse[added[-1]] if added else path.small_mse
    firing = effects.firing_counts > 0
    summary = {
        "n_tokens": int(encoded.x.shape[0]),
        "config": config.to_dict(),
        "classification": {
            "threshold": classification.threshold, "n_large_latents": int(classification.novel_mask.numel()),
            "n_novel": int(classification.novel_mask.sum()),
            "n_reconstruction": int((~classification.novel_mask).sum()),
            "novel_fraction": classification.novel_fraction, "n_swap_groups": len(groups.groups),
        },
        "adding_novel_latents": {
            "small_mse": path.small_mse, "mse_after": after_novel, "mse_change": after_novel - path.small_mse,
            "relative_mse_change": (after_novel - path.small_mse) / path.small_mse if path.small_mse else None,
            "l0_after": path.l0[added[-1]] if added else path.small_l0,
        },
        "interpolation": {
            "small_mse": path.small_mse, "large_mse": path.large_mse, "small_l0": path.small_l0,
            "large_l0": path.large_l0, "steps": len(path.phase) - 1, "end_mse": path.mse[-1], "end_l0": path.l0[-1],
        },
        "single_latent_insertion": {
            "n_firing": int(firing.sum()),
            "n_lowering_mse": int((effects.delta_mse[firing] < 0).sum()),
            "n_novel_lowering_mse": int(((effects.delta_mse < 0) & firing & classification.novel_mask).sum()),
        },
    }
    return summary, results


def _figures(results: dict[str, Any], out: Path, labels: tuple[str, str], meta: dict) -> list[str]:
    from sae_fast.stitching import novelty_roc
    from sae_fast.stitching.figures import (
        plot_interpolation, plot_max_cosine_histogram, plot_novel_latent_mse, plot_roc, plot_single_latent_effects,
    )

    paths = [
        *plot_max_cosine_histogram(results["histogram"], out, meta=meta),
        *plot_interpolation({f"{labels[0]} to {labels[1]}": results["interpolation"]}, out, meta=meta),
        *plot_single_latent_effects(results["single_latent"], out, meta=meta),
        *plot_novel_latent_mse(results["novel_latent_mse"], out, labels=labels, meta=meta),
    ]
    effects = results["single_latent"]
    improves = effects.delta_mse[effects.firing_counts > 0] < 0
    if 0 < int(improves.sum()) < improves.numel():  # a ROC curve needs latents on both sides
        paths += plot_roc(novelty_roc(effects), out, meta=meta)
    return [str(p) for p in paths]


def _check_provenance(args: argparse.Namespace) -> None:
    """Both SAEs of the activations' model and hook, and of one another's."""
    from sae_fast.activations.cache_format import ACTIVATIONS, read_manifest
    from sae_fast.commands.inputs import folder_kind
    from sae_fast.commands.provenance import check_sae_against_cache, check_sae_against_sae

    check_sae_against_sae(args.large, args.small, args.allow_other_activations)
    if args.cache is None:  # streamed from the model and hook the SAEs' configs record
        return
    cache = Path(args.cache)
    cache = cache.parent if cache.name == ACTIVATIONS else cache
    if folder_kind(cache) == "cache":  # a bare tensor file records nothing to compare
        manifest = read_manifest(cache)
        for path in (args.small, args.large):
            check_sae_against_cache(path, manifest, args.cache, args.allow_other_activations)


def cmd_stitch(args: argparse.Namespace) -> int:
    from sae_fast.commands.arguments import dataclass_from_args
    from sae_fast.commands.inputs import load_activations, streamed_activations
    from sae_fast.commands.outputs import check_writable, hold_folder_lock, refuse_artefact_path
    from sae_fast.io.atomic import atomic_write_text
    from sae_fast.stitching import StitchingConfig
    from sae_fast.stitching.figures import load_sae, to_jsonable

    out = Path(args.out)
    refuse_artefact_path(out)
    hold_folder_lock(args, out)
    check_writable(out)
    config = dataclass_from_args(StitchingConfig, args)
    _check_provenance(args)
    small, large = load_sae(args.small, args.device), load_sae(args.large, args.device)
    if small.d_sae >= large.d_sae:
        raise ValueError(f"--small has {small.d_sae} latents and --large {large.d_sae}; pass the smaller SAE "
                         "as --small")
    if args.cache is not None:
        x, data = load_activations(args.cache, args.max_tokens, split="heldout"), {"cache": str(args.cache)}
    else:
        x, data = streamed_activations([args.small, args.large], args, args.max_tokens)
    summary, results = stitching_report(small, large, x, config, args.bins)
    record = {"small": str(args.small), "large": str(args.large), **data, **summary}
    if args.figures:
        labels = (f"SAE-{small.d_sae}", f"SAE-{large.d_sae}")
        record["figures"] = _figures(results, out, labels, meta={"small": args.small, "large": args.large, **data})
    atomic_write_text(out / STITCH_RESULT, json.dumps(to_jsonable(record), indent=2))
    c, a = summary["classification"], summary["adding_novel_latents"]
    print(f"{c['n_novel']} of {c['n_large_latents']} latents of the large SAE are novel at θ = {c['threshold']} "
          f"({c['n_swap_groups']} swap groups); adding them changes the small SAE's MSE "
          f"{a['small_mse']:.4g} -> {a['mse_after']:.4g}; wrote {out / STITCH_RESULT}")
    return 0
