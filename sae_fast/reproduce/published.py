"""``python -m sae_fast.reproduce --preset paper-gpt2``: the paper's analyses on the paper's own GPT-2 SAEs.

Nothing is trained but the meta-SAE: the published feature-splitting family (GPT-2 small, layer 8
residual stream) is loaded by release name, activations are streamed from GPT-2 small on OpenWebText
with the hook, context size and BOS the SAEs' configs record, and the stitching analyses (768 -> 1536 ->
3072) and the meta-SAE of the 49,152-latent SAE are run. ``claims.json`` and ``report.md`` hold the
claims that these SAEs can check, beside the paper's numbers (two seeds per size and the TopK / JumpReLU
comparisons need SAEs that are not published, so those claims are left to ``make reproduce``).

It needs the Hugging Face Hub (the SAEs, GPT-2) and the OpenWebText stream; without network access it
stops before loading anything and says what to fetch. This path has not been run where sae_fast is
developed (no network there): only its offline refusal is tested.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sae_fast.config_fields import documented

PRESET = "paper-gpt2"
RESULT_FORMAT = "sae_fast.reproduce.published_claims"


@dataclass
class PublishedReproduceConfig:
    """The ``paper-gpt2`` preset; every field is a ``--flag`` of ``python -m sae_fast.reproduce --preset``."""

    out: str = documented("outputs/reproduce-gpt2", "Output folder (claims.json, report.md, figures).")
    release: str = documented("gpt2-small-res-jb-feature-splitting", "The published SAE family (a release name).")
    small: str = documented("blocks.8.hook_resid_pre_768", "SAE id of the smallest SAE of the stitching pairs.")
    medium: str = documented("blocks.8.hook_resid_pre_1536", "SAE id of the middle SAE (the paper's 768 -> 1536).")
    large: str = documented("blocks.8.hook_resid_pre_3072", "SAE id of the largest SAE of the stitching pairs.")
    meta_sae: str = documented("blocks.8.hook_resid_pre_49152", "SAE id whose decoder rows the meta-SAE decomposes.")
    texts: str = documented("openwebtext", "Text source of the evaluation activations (the paper's OpenWebText).")
    eval_tokens: int = documented(32768, "Activation rows the stitching analyses are measured on.")
    threshold: float = documented(0.7, "Max-cosine threshold between novel and reconstruction latents (GPT-2's).")
    meta_epochs: int = documented(2000, "Meta-SAE epochs (the paper's 2000).")
    n_meta_latents: int = documented(2304, "Meta-latents (the paper's 2304 for 49,152 latents).")
    device: str = documented("cuda", "Device for GPT-2, the SAEs and the meta-SAE ('cpu' works, slowly).")
    seed: int = documented(0, "Seed of the random stitching orders and of the meta-SAE.")
    progress: bool = documented(True, "Show progress bars.")


def _hub_reachable(timeout: float = 5.0) -> bool:
    import huggingface_hub.constants as constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = constants.ENDPOINT.split("://", 1)[-1].split("/", 1)[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def check_prerequisites(config: PublishedReproduceConfig) -> None:
    """Refuse at once, saying what is needed and how to get it, when the Hub or the text stream is out of reach."""
    from sae_fast.io.hub import published_sae
    from sae_fast.io.releases import find_published_sae

    ids = [config.small, config.medium, config.large, config.meta_sae]
    repo = find_published_sae(config.release, ids[0])[0].repo_id
    for sae_id in ids:  # unknown ids fail here, with close matches, before anything is fetched
        published_sae(config.release, sae_id)
    streamed = config.texts == "openwebtext" or config.texts.startswith("hf:")
    if not streamed and Path(config.texts).exists() or _hub_reachable():
        return  # local texts: SAEs and model may come from the cache (the loaders say what is missing)
    folders = " ".join(f"--include '{sae_id}/*'" for sae_id in ids)
    raise RuntimeError(
        f"--preset {PRESET} needs the Hugging Face Hub, which cannot be reached from here (HF_HUB_OFFLINE is set or "
        f"there is no network). It needs: the SAEs {ids} of {config.release} ({repo}), the model gpt2"
        + f", and the text source {config.texts!r}. Run it on a machine with "
        "network access (ideally a GPU): `make reproduce-gpt2`. To run it offline later, fetch everything first: "
        f"`huggingface-cli download {repo} {folders}` and `huggingface-cli download gpt2`, and pass local "
        "texts with --texts PATH.txt (a stream cannot be cached), then run with HF_HUB_OFFLINE=1."
    )


def published_claims(config: PublishedReproduceConfig, stitching: dict, meta_fve: float) -> dict[str, Any]:
    """The claims these SAEs can check, in ``claims.json``'s shape."""
    from sae_fast.reproduce.claims import (
        PAPER_ADD_NOVEL_MSE_CHANGE, PAPER_META_FVE, PAPER_NOVEL_FRACTION, PAPER_R_SQUARED,
    )
    from sae_fast.reproduce.claims import _claim as claim

    first = next(iter(stitching["pairs"].values()))
    novel, added, steps = first["classification"]["novel_fraction"], first["adding_novel_latents"], \
        first["mean_step_delta_mse"]
    r2, auc = stitching["activation_vs_decoder"]["r_squared"], first["novelty_roc_auc"]
    return {
        "novel_fraction": claim(
            f"share of {config.medium}'s latents with max decoder cosine < {config.threshold} to {config.small}",
            PAPER_NOVEL_FRACTION, novel, novel <= 0.60, "<= 0.60"),
        "add_novel_mse_change": claim(
            "relative MSE change from adding every novel latent to the small SAE", PAPER_ADD_NOVEL_MSE_CHANGE,
            added["relative_mse_change"], added["relative_mse_change"] < 0, "< 0 (lowers the MSE)"),
        "fig5_both_phases_lower_mse": claim(
            "Fig. 5: mean MSE change per step of adding novel latents and of swapping groups", "both < 0", steps,
            None not in steps.values() and steps["add_novel"] < 0 and steps["swap_group"] < 0, "both < 0"),
        "r_squared_activation_vs_decoder": claim(
            "R² of activation cosine against decoder cosine, pairs with decoder cosine > 0.5 (Fig. 11)",
            PAPER_R_SQUARED, r2, r2 >= 0.6, ">= 0.6"),
        "novelty_predicts_mse_effect_auc": claim(
            "ROC AUC of low max cosine as a predictor that inserting a latent lowers the MSE (Fig. 16)", None, auc,
            None if auc is None else auc > 0.5, "> 0.5"),
        "meta_sae_fve": claim(
            f"fraction of variance of {config.meta_sae}'s decoder rows explained by its meta-SAE (section 5)",
            PAPER_META_FVE, meta_fve, meta_fve >= 0.40, ">= 0.40"),
    }


def run_published_reproduction(config: PublishedReproduceConfig) -> Path:
    """Run the preset under ``config.out``; returns the report's path."""
    import torch

    from sae_fast.activations.sae_source import activation_source, stream_sae_activations
    from sae_fast.commands.models import load_model_by_name
    from sae_fast.io import load_pretrained, save_pretrained
    from sae_fast.io.atomic import atomic_write_text
    from sae_fast.meta import MetaSAEConfig, compare_with_saes, plot_meta_report, train_meta_sae
    from sae_fast.reproduce.analyses import stitching_pairs
    from sae_fast.reproduce.report import claims_table
    from sae_fast.stitching.figures import to_jsonable

    if not isinstance(config, PublishedReproduceConfig):
        raise TypeError(f"config must be a PublishedReproduceConfig, got {type(config).__name__}")
    check_prerequisites(config)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    names = {key: f"{config.release}:{getattr(config, key)}" for key in ("small", "medium", "large", "meta_sae")}
    saes = {key: load_pretrained(name, device=config.device) for key, name in names.items()}

    source = activation_source([names["small"], names["medium"], names["large"]], texts=config.texts,
                               max_tokens=config.eval_tokens)
    print(f"[reproduce {PRESET}] streaming {config.eval_tokens} activations of {source.model} at "
          f"{source.config.hook_name} from {source.texts}", flush=True)
    x = stream_sae_activations(source, load_model_by_name(source.model, config.device), config.progress)
    stitching = stitching_pairs([(saes["small"], saes["medium"]), (saes["medium"], saes["large"])], x,
                                config.threshold, config.seed, out / "stitching")

    meta_config = MetaSAEConfig(n_meta_latents=config.n_meta_latents, epochs=config.meta_epochs,
                                train={"seed": config.seed, "progress": config.progress, "device": config.device})
    meta = train_meta_sae(saes["meta_sae"], meta_config)
    save_pretrained(meta.meta_sae, out / "meta" / "meta_sae", metadata={"decomposed_sae": names["meta_sae"]})
    references = {f"SAE-{saes[key].d_sae}": saes[key] for key in ("small", "medium", "large", "meta_sae")}
    distributions = compare_with_saes(meta.meta_sae, references)
    plot_meta_report(out / "meta" / "fig6_meta_sae.png", distributions)

    claims = published_claims(config, stitching, meta.fraction_variance_explained)
    document = to_jsonable({
        "format": RESULT_FORMAT, "preset": PRESET, "config": asdict(config), "saes": names,
        "activations": {"model": source.model, "texts": source.texts, **source.config.to_dict(),
                        "rows": int(x.shape[0])},
        "claims": claims, "stitching": stitching,
        "meta": {"summary": meta.summary(), "max_cosine": {k: d.summary() for k, d in distributions.items()}},
    })
    atomic_write_text(out / "claims.json", json.dumps(document, indent=2))
    lines = [f"# The paper's claims on its published GPT-2 SAEs ({config.release})", "",
             f"Activations: {x.shape[0]} rows of `{source.model}` at `{source.config.hook_name}` from "
             f"`{source.texts}`. Every number below was measured by this run; `claims.json` holds them all.", "",
             *claims_table(document["claims"]), ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    print("\n".join(claims_table(document["claims"])), flush=True)
    return report
