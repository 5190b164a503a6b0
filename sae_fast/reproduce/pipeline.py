"""The reproduction's driver: stages in order, each timed, with the results written atomically.

``--preset paper-gpt2`` runs :mod:`sae_fast.reproduce.published` instead (the paper's own GPT-2 SAEs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from sae_fast.io.atomic import atomic_write_text
from sae_fast.reproduce.analyses import (
    architecture_comparison, convergence_point, distinct_tokens_study, family_names, load_family, meta_analyses,
    stitching_analyses,
)
from sae_fast.reproduce.claims import (
    CLAIMS_FORMAT, CLAIMS_VERSION, architecture_claims, check_claims_format, l0_claim, meta_claims, stitching_claims,
)
from sae_fast.reproduce.config import FAMILIES, ReproduceConfig
from sae_fast.reproduce.family import extract_cache, train_distinct_study, train_family
from sae_fast.reproduce.report import write_report

CLAIMS = "claims.json"


def _log(message: str) -> None:
    print(f"[reproduce] {message}", flush=True)


def run_reproduction(config: ReproduceConfig) -> Path:
    """Run (or finish) the reproduction under ``config.out``; returns the report's path."""
    from sae_fast.activations import ActivationCacheReader
    from sae_fast.stitching.figures import to_jsonable

    if not isinstance(config, ReproduceConfig):
        raise TypeError(f"config must be a ReproduceConfig, got {type(config).__name__}")
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(stage: str, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        timings[stage] = time.perf_counter() - start
        return value

    reader = timed("cache (0 when reused)", extract_cache, config, _log)
    heldout = ActivationCacheReader(out / "cache", split="heldout")
    x = heldout.rows(0, config.eval_tokens)
    snapshots = timed("train the family (0 when reused)", train_family, config, reader, _log)
    subset = timed("distinct-tokens study: training (0 when reused)", train_distinct_study, config, reader, _log)

    _log("convergence study")
    start = time.perf_counter()
    convergence = {family: {} for family in FAMILIES}
    for step, folder in snapshots.items():
        saes = load_family(config, folder)
        for family in FAMILIES:
            convergence[family][str(step)] = convergence_point(config, saes, x, family)
    distinct = None
    if subset is not None:
        distinct = distinct_tokens_study(config, subset, snapshots[config.milestones[0]], reader.num_rows, x)
    timings["convergence and distinct-tokens studies"] = time.perf_counter() - start

    final = snapshots[config.milestones[-1]]
    saes = load_family(config, final)
    relative = lambda name: str((final / name).relative_to(out))  # noqa: E731
    stitching, claims = {}, {}
    for family, folder in zip(FAMILIES, ("stitching", "stitching_batchtopk")):
        _log(f"stitching analyses of the {family} family on {final}")
        stitching[family] = timed(f"stitching analyses ({family})", stitching_analyses, config, saes, x,
                                  out / folder, family)
        n = family_names(config, family)
        folders = {"small": relative(n["small"]), "large": relative(n["medium"]),
                   "small_other": relative(n["small_other"]), "small_name": n["small"],
                   "small_other_name": n["small_other"]}
        claims[family] = stitching_claims(config, stitching[family], folders, family)
    _log("BatchTopK vs TopK vs JumpReLU vs ReLU/L1 (with CE)")
    architectures = timed("architecture comparison", architecture_comparison, config, saes, x, heldout,
                          out / "architectures")
    _log("meta-SAE on the ReLU/L1 family's largest SAE")
    meta = timed("meta-SAE", meta_analyses, config, saes, out / "meta")

    relu = family_names(config, "relu")
    heldout_l0 = {str(getattr(config, size)): convergence["relu"][str(config.milestones[-1])][f"heldout_l0_{size}"]
                  for size in ("small", "medium", "large")}
    document = {
        "format": CLAIMS_FORMAT, "version": CLAIMS_VERSION, "config": config.to_dict(),
        "heldout_cache": "cache",
        "data": {"train_rows": reader.num_rows, "eval_rows": int(x.shape[0]), "heldout_rows": heldout.num_rows},
        "claims": {**claims["relu"], "relu_heldout_l0": l0_claim(config, heldout_l0),
                   **meta_claims(meta), **architecture_claims(config, architectures, relu)},
        "convergence": convergence["relu"],
        "stitching": stitching["relu"], "architectures": architectures, "meta": meta,
        "batchtopk_family": {"claims": claims["batchtopk"], "convergence": convergence["batchtopk"],
                             "stitching": stitching["batchtopk"]},
        "distinct_tokens": distinct,
        "l1_coefficients": {name: saes[name].l1_coefficient for name in saes if name.startswith("relu_")},
        "saes": {step: str(folder.relative_to(out)) for step, folder in snapshots.items()},
        "timings_s": timings,
    }
    document = to_jsonable(document)
    check_claims_format(document)
    atomic_write_text(out / CLAIMS, json.dumps(document, indent=2))
    report = write_report(out, document, timings)
    held = sum(1 for c in document["claims"].values() if c["holds"])
    checked = sum(1 for c in document["claims"].values() if c["holds"] is not None)
    _log(f"{held} of {checked} checked claims hold; report: {report}")
    for name, claim in document["claims"].items():
        _log(f"  {name}: paper {claim['paper']}, ours {claim['measured']}, target {claim['target']}, "
             f"holds {claim['holds']}")
    return report


def parse_config(argv: list[str] | None, prog: str = "python -m sae_fast.reproduce", doc: str | None = __doc__
                 ) -> ReproduceConfig:
    """A :class:`ReproduceConfig` from command-line flags (one per field)."""
    import argparse

    from sae_fast.commands.arguments import add_dataclass_arguments, dataclass_from_args
    from sae_fast.config_fields import plain_text

    parser = argparse.ArgumentParser(prog=prog, description=None if doc is None else plain_text(doc),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, ReproduceConfig, skip=("milestones",))
    parser.add_argument("--milestones", type=int, nargs="+", default=list(ReproduceConfig.milestones),
                        help="optimiser steps at which to snapshot and measure; training ends at the last")
    args = parser.parse_args(argv)
    return dataclass_from_args(ReproduceConfig, args, milestones=tuple(args.milestones))


def main(argv: list[str] | None = None) -> int:
    """``python -m sae_fast.reproduce [--preset paper-gpt2] [flags]``: the offline family, or a preset."""
    import argparse
    import sys

    from sae_fast.reproduce.published import PRESET, PublishedReproduceConfig, run_published_reproduction

    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--preset", choices=(PRESET,), default=None)
    known, rest = chooser.parse_known_args(argv)
    if known.preset is None:
        run_reproduction(parse_config(rest))
        return 0
    import sae_fast.reproduce.published as published
    from sae_fast.commands.arguments import add_dataclass_arguments, dataclass_from_args

    parser = argparse.ArgumentParser(prog=f"python -m sae_fast.reproduce --preset {PRESET}",
                                     description=published.__doc__)
    add_dataclass_arguments(parser, PublishedReproduceConfig)
    config = dataclass_from_args(PublishedReproduceConfig, parser.parse_args(rest))
    try:
        run_published_reproduction(config)
    except (RuntimeError, ValueError, FileNotFoundError, PermissionError) as error:
        print(f"reproduce --preset {PRESET}: error: {error}", file=sys.stderr)
        return 2
    return 0
