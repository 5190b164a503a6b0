"""``sae-fast meta``: train a meta-SAE (paper section 5) on a saved SAE's decoder rows and save it.

Writes ``<out>/meta_sae/`` (an ordinary SAE folder: load it with ``load_pretrained``) and
``<out>/meta_sae.json``: the meta-SAE's fit (fraction of the rows' variance explained, L0, dead
meta-latents), its configuration, how many latents share each meta-latent, the decomposition of the
first ``--examples`` latents, and with ``--reference`` SAEs the max cosine of the meta-latents to each
(Fig. 6, also drawn into ``meta_sae.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

META_SAE_FOLDER = "meta_sae"
META_RESULT = "meta_sae.json"
WORKFLOW_SET_TRAIN_FIELDS = ("eps", "micro_batches", "total_tokens", "init_b_dec_from_data", "checkpoint_dir",
                             "checkpoint_every", "resume", "log_jsonl", "tensorboard_dir", "wandb_project", "dtype")
"""Fields of ``MetaSAEConfig.train`` with no ``meta`` flag: the workflow sets them, or this command writes
no such file."""
PAPER_LATENTS_PER_META_LATENT = 49152 / 2304
"""The paper decomposes 49,152 GPT-2 latents into 2,304 meta-latents; the default keeps that ratio."""


def add_meta_arguments(parser: argparse.ArgumentParser) -> None:
    from sae_fast.commands.arguments import add_dataclass_arguments, int_at_least
    from sae_fast.commands.provenance import add_provenance_flag
    from sae_fast.meta import MetaSAEConfig

    from sae_fast.commands.inputs import SAE_HELP

    parser.add_argument("--sae", required=True, help="the SAE whose decoder rows are decomposed: " + SAE_HELP)
    parser.add_argument("--out", required=True, help=f"folder for {META_SAE_FOLDER}/ and {META_RESULT}")
    parser.add_argument("--reference", action="append", default=[], metavar="DIR",
                        help="an SAE to compare the meta-latents with, given like --sae (repeatable; e.g. smaller SAEs "
                             "of the family)")
    parser.add_argument("--examples", type=int_at_least(0), default=8, help="latents whose decomposition is recorded")
    add_provenance_flag(parser)
    add_dataclass_arguments(parser, MetaSAEConfig, skip=WORKFLOW_SET_TRAIN_FIELDS, defaults={"n_meta_latents": None})


def reference_label(reference: str) -> str:
    """A short name for a reference SAE: a folder's name (also of an hf:// one), or a published SAE's id."""
    from sae_fast.io.hub import HF_PREFIX

    if Path(reference).exists() or reference.startswith(HF_PREFIX) or ":" not in reference:
        return reference.split("@")[0].rstrip("/").rsplit("/", 1)[-1] if reference.startswith(HF_PREFIX) \
            else Path(reference).name
    return reference.split(":", 1)[1]


def cmd_meta(args: argparse.Namespace) -> int:
    from sae_fast.commands.arguments import dataclass_from_args
    from sae_fast.commands.outputs import check_writable, hold_folder_lock, refuse_artefact_path
    from sae_fast.commands.provenance import check_sae_against_sae
    from sae_fast.io import load_pretrained
    from sae_fast.io.atomic import atomic_write_text, check_free_space
    from sae_fast.meta import MetaDecomposition, MetaSAEConfig, compare_with_saes, plot_meta_report, train_meta_sae

    out = Path(args.out)
    refuse_artefact_path(out)
    hold_folder_lock(args, out)
    check_writable(out)
    for path in args.reference:  # the meta-latents are compared with latents of the same activations
        check_sae_against_sae(path, args.sae, args.allow_other_activations)
    sae = load_pretrained(args.sae, device=args.device)
    references = {reference_label(p): load_pretrained(p, device=args.device) for p in args.reference}
    if args.k > sae.d_in:
        raise ValueError(f"--k {args.k} is above the width d_in={sae.d_in} of the rows decomposed: with that many "
                         "meta-latents per row any row is rebuilt exactly and the decomposition means nothing; "
                         f"give --k <= {sae.d_in}")
    n_meta = args.n_meta_latents
    if n_meta is None:
        n_meta = max(args.k, round(sae.d_sae / PAPER_LATENTS_PER_META_LATENT))
    config = dataclass_from_args(MetaSAEConfig, args, n_meta_latents=n_meta)
    # Refuse a disk that cannot hold the result before training, not after (float32: 4 bytes a number).
    check_free_space(out, 4 * (2 * sae.d_in * n_meta + n_meta + sae.d_in) + 2**20, f"the meta-SAE in {out}")
    meta = train_meta_sae(sae, config)
    save_keeping_work(meta.meta_sae, out / META_SAE_FOLDER,
                      metadata={"workflow": "meta_sae", "decomposed_sae": str(args.sae)})

    decomposition = MetaDecomposition(meta.meta_sae, meta.rows)
    counts = decomposition.meta_latent_counts()
    report = {
        "decomposed_sae": str(args.sae), "meta_sae": str(out / META_SAE_FOLDER), "fit": meta.summary(),
        "config": config.to_dict(),
        "meta_latent_usage": {"mean_latents_per_meta_latent": float(counts.float().mean()),
                              "unused_meta_latents": int((counts == 0).sum())},
        "decompositions": [decomposition.of(i).to_dict() for i in range(min(args.examples, sae.d_sae))],
    }
    if references:
        distributions = compare_with_saes(meta.meta_sae, references)
        report["max_cos_vs_references"] = {name: d.summary() for name, d in distributions.items()}
        plot_meta_report(out / "meta_sae.png", distributions,
                         title=f"meta-SAE: {sae.d_sae} latents -> {n_meta} meta-latents (k={config.k})")
    atomic_write_text(out / META_RESULT, json.dumps(report, indent=2))
    print(f"meta-SAE of {args.sae}: {sae.d_sae} latents -> {n_meta} meta-latents (k={config.k}), "
          f"{meta.fraction_variance_explained:.4f} of the decoder rows' variance explained; wrote {out}")
    return 0


def save_keeping_work(sae, folder: Path, metadata: dict) -> None:
    """``save_pretrained(sae, folder)``; if that fails (disk full), save into the system's temporary
    folder instead (often another disk) and say where, so the trained work is never lost."""
    import tempfile

    from sae_fast.io import save_pretrained

    try:
        save_pretrained(sae, folder, metadata=metadata)
    except OSError as error:
        rescue = Path(tempfile.mkdtemp(prefix="sae-fast-meta-")) / folder.name
        try:
            save_pretrained(sae, rescue, metadata=metadata)
        except OSError:
            raise error from None
        raise OSError(error.errno, f"{error.strerror}; the trained meta-SAE was saved to {rescue} instead: move "
                      f"it to {folder} once there is room", error.filename) from None
