"""Beyond the paper: are a Matryoshka SAE's prefixes closer to a nested family of canonical units than
independently trained SAEs are? (``python -m sae_fast.reproduce.matryoshka``, after ``make reproduce``.)

On the reproduction's cache and recipe, one Matryoshka BatchTopK SAE whose widths are the BatchTopK
family's sizes is trained for as many steps as the family. Each prefix ``[0, w)`` is an SAE of width
``w`` (the same codes restricted to it, which is exactly Matryoshka's eval-mode encoding). Measured on the
held-out split: each prefix against the BatchTopK SAE of its width (and, as the baseline, that SAE
against its other seed), prefix against prefix (against BatchTopK size against size), and a meta-SAE on
the whole dictionary (against the one on BatchTopK's largest). The comparison is at the last of
``--milestones`` (e.g. ``--milestones 1000 4000`` compares at 4000 steps, against that snapshot of the
family). Writes ``matryoshka/stepNNNNNN/{matryoshka.json,report.md}`` under the reproduction's folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from sae_fast.io.atomic import atomic_write_text
from sae_fast.reproduce.analyses import family_names, add_novel_relative_mse_change, load_family
from sae_fast.reproduce.config import ReproduceConfig, SAESpec
from sae_fast.reproduce.family import DONE, build_sae, snapshot_dir
from sae_fast.sae import BatchTopKSAE
from sae_fast.training import PAPER, TrainConfig, Trainer


def prefix_sae(sae: Any, width: int) -> BatchTopKSAE:
    """The first ``width`` latents of ``sae`` as a BatchTopK SAE with its θ (its eval-mode prefix)."""
    prefix = BatchTopKSAE(sae.d_in, width, sae.k, seed=0, normalize_activations=sae.normalize_activations)
    with torch.no_grad():
        for name in ("W_enc", "b_enc"):
            getattr(prefix, name).copy_(getattr(sae, name)[..., :width])
        prefix.W_dec.copy_(sae.W_dec[:width])
        prefix.b_dec.copy_(sae.b_dec)
    prefix.set_threshold(float(sae.threshold))
    return prefix.eval()


def study_dir(config: ReproduceConfig) -> Path:
    return Path(config.out) / "matryoshka" / f"step{config.milestones[-1]:06d}"


def train_matryoshka(config: ReproduceConfig, reader: Any, log) -> Any:
    """The Matryoshka SAE trained like the family (resumable; reused when its folder exists)."""
    from sae_fast.commands.recalibrate import recalibrate_thetas
    from sae_fast.io import load_pretrained, save_pretrained

    out = study_dir(config)
    folder = out / "sae"
    if (folder / "cfg.json").is_file():
        log(f"matryoshka: reusing {folder}")
        return load_pretrained(folder)
    spec = SAESpec(f"matryoshka_{config.large}_s0", "matryoshka_batchtopk", config.large, 0,
                   {"matryoshka_widths": [config.small, config.medium, config.large]})
    sae = build_sae(spec, reader.d_model, config)
    steps = config.milestones[-1]
    checkpoint = out / "checkpoints" / "checkpoint.pt"
    train_config = TrainConfig(
        lr=config.lr, betas=PAPER.train["betas"], batch_size=config.batch_size, total_tokens=steps * config.batch_size,
        seed=config.seed, checkpoint_dir=str(checkpoint.parent), checkpoint_every=1000, resume=checkpoint.is_file(),
        log_every=50, log_jsonl=str(out / "metrics.jsonl"), progress=config.progress,
    )
    log(f"matryoshka: training to step {steps}")
    Trainer({spec.name: sae}, train_config, data_identity=reader.identity()).train(
        reader.batches(config.batch_size, seed=config.seed, epochs=None))
    recalibrate_thetas({spec.name: sae}, reader.batches(config.batch_size, seed=config.seed + steps, epochs=1), 8)
    save_pretrained(sae, folder, metadata={"hook_name": config.hook_name, "steps": steps, "recipe": "paper"})
    return sae


def _pair(small: Any, large: Any, x: torch.Tensor, threshold: float) -> dict[str, float]:
    from sae_fast.stitching import classify_latents, reconstruction_fraction

    return {"novel_fraction": classify_latents(small, large, threshold).novel_fraction,
            "add_novel_mse_change": add_novel_relative_mse_change(small, large, x, threshold),
            "reconstruction_fraction": reconstruction_fraction(large, small, threshold)}


def run_matryoshka_study(config: ReproduceConfig, log=print) -> Path:
    from sae_fast.activations import ActivationCacheReader
    from sae_fast.evaluation import evaluate
    from sae_fast.meta import MetaSAEConfig, train_meta_sae
    from sae_fast.stitching import reconstruction_fraction

    out = Path(config.out)
    final = snapshot_dir(config, config.milestones[-1])
    if not (final / DONE).is_file():
        raise FileNotFoundError(f"{final} is not a finished snapshot: run `make reproduce` (same flags) first")
    start = time.perf_counter()
    reader = ActivationCacheReader(out / "cache")
    x = ActivationCacheReader(out / "cache", split="heldout").rows(0, config.eval_tokens)
    matryoshka = train_matryoshka(config, reader, log)
    family, n = load_family(config, final), family_names(config)
    widths = (config.small, config.medium, config.large)
    prefixes = {w: prefix_sae(matryoshka, w) for w in widths}
    independent = {config.small: family[n["small"]], config.medium: family[n["medium"]], config.large: family[n["large"]]}
    other_seed = {config.small: family[n["small_other"]], config.medium: family[n["medium_other"]]}
    t = config.threshold
    result: dict[str, Any] = {"threshold": t, "steps": config.milestones[-1], "prefix_vs_batchtopk": {},
                              "prefix_vs_prefix": {}, "batchtopk_vs_batchtopk": {}}
    for w in widths:
        row = {"prefix_latents_matched_in_batchtopk": reconstruction_fraction(prefixes[w], independent[w], t),
               "batchtopk_latents_matched_in_prefix": reconstruction_fraction(independent[w], prefixes[w], t),
               "heldout_nmse_prefix": evaluate(prefixes[w], x).nmse,
               "heldout_nmse_batchtopk": evaluate(independent[w], x).nmse}
        if w in other_seed:
            row["baseline_batchtopk_other_seed_matched"] = reconstruction_fraction(other_seed[w], independent[w], t)
        result["prefix_vs_batchtopk"][str(w)] = row
    for a, b in zip(widths, widths[1:]):
        result["prefix_vs_prefix"][f"{a}_to_{b}"] = _pair(prefixes[a], prefixes[b], x, t)
        result["batchtopk_vs_batchtopk"][f"{a}_to_{b}"] = _pair(independent[a], independent[b], x, t)
    meta_config = MetaSAEConfig(n_meta_latents=config.n_meta_latents, k=config.meta_k, epochs=config.meta_epochs,
                                train={"batch_size": config.large, "seed": config.seed, "progress": config.progress})
    result["meta_sae_fve"] = {"matryoshka": train_meta_sae(matryoshka, meta_config).fraction_variance_explained,
                              "batchtopk": train_meta_sae(independent[config.large], meta_config)
                              .fraction_variance_explained}
    result["seconds"] = time.perf_counter() - start
    atomic_write_text(study_dir(config) / "matryoshka.json", json.dumps(result, indent=2))
    report = _report(result)
    atomic_write_text(study_dir(config) / "report.md", report)
    log(report)
    return study_dir(config) / "report.md"


def _report(result: dict[str, Any]) -> str:
    f = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["# Matryoshka prefixes vs independently trained BatchTopK SAEs", "",
             f"Max-cosine threshold {result['threshold']}, {result['steps']} steps each, held-out tokens.", "",
             "| width | prefix latents matched in BatchTopK | BatchTopK latents matched in prefix | "
             "baseline: BatchTopK other seed matched | NMSE prefix | NMSE BatchTopK |", "|---|---|---|---|---|---|"]
    for w, row in result["prefix_vs_batchtopk"].items():
        lines.append(f"| {w} | {f(row['prefix_latents_matched_in_batchtopk'])} | "
                     f"{f(row['batchtopk_latents_matched_in_prefix'])} | "
                     f"{f(row.get('baseline_batchtopk_other_seed_matched', 'n/a'))} | "
                     f"{f(row['heldout_nmse_prefix'])} | {f(row['heldout_nmse_batchtopk'])} |")
    lines += ["", "| pair | novel fraction (prefixes) | novel fraction (BatchTopK) | MSE change adding novel "
              "(prefixes) | MSE change adding novel (BatchTopK) |", "|---|---|---|---|---|"]
    for pair, p in result["prefix_vs_prefix"].items():
        b = result["batchtopk_vs_batchtopk"][pair]
        lines.append(f"| {pair} | {f(p['novel_fraction'])} | {f(b['novel_fraction'])} | "
                     f"{f(p['add_novel_mse_change'])} | {f(b['add_novel_mse_change'])} |")
    meta = result["meta_sae_fve"]
    lines += ["", f"Meta-SAE fraction of variance explained: Matryoshka {f(meta['matryoshka'])}, "
              f"BatchTopK {f(meta['batchtopk'])}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sae_fast.reproduce.pipeline import parse_config

    run_matryoshka_study(parse_config(argv, prog="python -m sae_fast.reproduce.matryoshka", doc=__doc__),
                         log=lambda m: print(f"[matryoshka] {m}", flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
