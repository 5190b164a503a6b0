"""``sae-fast``: extract activations, train SAEs, evaluate them.

    sae-fast cache --out runs/acts-l15 --hook-name blocks.15.hook_resid_post --max-tokens 1000000
    sae-fast train --cache runs/acts-l15 --sae btk=batchtopk:d_sae=4096,k=32 --sae topk=topk:d_sae=4096,k=32 \\
        --out runs/sweep --total-tokens 50000000
    sae-fast train ... --resume            # continue exactly where a killed run checkpointed
    sae-fast train --recipe paper ...      # the paper's settings as defaults (docs/training.md: "The paper's recipe")
    sae-fast eval --sae runs/sweep/btk --cache runs/acts-heldout --ce-sequences 32
    sae-fast recalibrate --sae runs/sweep/btk --cache runs/acts-l15     # BatchTopK θ (train does it by default)
    sae-fast stitch --small runs/s768/btk --large runs/s1536/btk --cache runs/acts-heldout --out runs/stitch
    sae-fast meta --sae runs/sweep/btk --out runs/meta --epochs 300
    sae-fast stitch --small gpt2-small-res-jb-feature-splitting:blocks.8.hook_resid_pre_768 \\
        --large gpt2-small-res-jb-feature-splitting:blocks.8.hook_resid_pre_1536 --out runs/stitch-gpt2

Wherever a command reads an SAE (``eval``, ``stitch``, ``meta``) it takes a folder, a published SAE as
``RELEASE:ID`` or ``hf://OWNER/REPO[/FOLDER][@REVISION]`` (see :mod:`sae_fast.io.hub`); ``stitch`` without
``--cache`` streams activations from the model the SAEs were trained on.

Flags of ``cache`` (and the ``--act-*`` flags of ``train --live``) map one-to-one onto
:class:`~sae_fast.activations.ActivationConfig`; the optimisation flags of ``train`` map one-to-one
onto :class:`~sae_fast.training.TrainConfig`, with the field documentation as ``--help``. Under
``torchrun`` ``train`` runs data-parallel (see :mod:`sae_fast.training.distributed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from sae_fast.commands.arguments import add_dataclass_arguments, dataclass_from_args, int_at_least, optional_finite_float
from sae_fast.commands.models import TINY_MODEL, load_model_by_name
from sae_fast.config_fields import plain_text

NO_RECIPE = "none"


# ---------------------------------------------------------------------------- SAE specs
def _parse_value(text: str) -> Any:
    if ";" in text:
        # Commas already separate the spec's items, so lists are written a;b;c (quote it in a shell).
        return [_parse_value(item.strip()) for item in text.split(";") if item.strip()]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sae_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME=ARCH:key=value,...`` -> ``(NAME, {"architecture": ARCH, key: value, ...})``.

    A value holding ``;`` is a list: ``matryoshka_widths=768;1536;3072`` -> ``[768, 1536, 3072]``.
    """
    match = re.fullmatch(r"([\w.-]+)=(\w+)(?::(.*))?", spec.strip())
    if not match:
        raise ValueError(
            f"bad --sae spec {spec!r}; use NAME=ARCH:key=value,... e.g. btk=batchtopk:d_sae=4096,k=32"
        )
    name, architecture, rest = match.groups()
    config: dict[str, Any] = {"architecture": architecture}
    for item in filter(None, (rest or "").split(",")):
        if "=" not in item:
            raise ValueError(f"bad item {item!r} in --sae {spec!r}; expected key=value")
        key, value = item.split("=", 1)
        config[key.strip()] = _parse_value(value.strip())
    return name, config


def build_saes(specs: list[str], d_in: int, seed: int, recipe: Any = None, batch_size: int | None = None
               ) -> dict[str, Any]:
    """The SAEs of ``--sae`` specs; a :class:`~sae_fast.training.Recipe` fills the keys a spec leaves out."""
    from sae_fast.sae.base import SparseAutoencoder

    saes = {}
    for index, spec in enumerate(specs):
        name, config = parse_sae_spec(spec)
        if name in saes:
            raise ValueError(f"two --sae specs are named {name!r}; names must be unique")
        config.setdefault("d_in", d_in)
        if config["d_in"] != d_in:
            raise ValueError(f"--sae {name}: d_in={config['d_in']} but the activations have width {d_in}")
        config.setdefault("seed", seed + index)
        if recipe is not None:
            for key, value in recipe.sae_kwargs(config["architecture"], batch_size).items():
                config.setdefault(key, value)
        saes[name] = SparseAutoencoder.from_config_dict(config)
    return saes


# ---------------------------------------------------------------------------- commands
def _warn(message: str) -> None:
    print("warning: " + message, file=sys.stderr, flush=True)


def cmd_cache(args: argparse.Namespace) -> int:
    import errno

    from sae_fast.activations import ActivationConfig, extract_activations, text_source_from_spec

    from sae_fast.activations.models import check_fits_context
    from sae_fast.commands.outputs import hold_folder_lock, refuse_artefact_path

    config = dataclass_from_args(ActivationConfig, args)
    refuse_artefact_path(args.out, own="cache")
    texts = text_source_from_spec(args.texts, seed=config.seed)
    if config.seed and not hasattr(texts, "seed"):
        _warn(f"--seed {config.seed} does not change which text {args.texts!r} yields (it is always read in its "
              "own order), so this cache holds the same sequences as seed 0; held-out rows come from "
              "--heldout-fraction, not from another seed")
    model = load_model_by_name(args.model, args.device)
    check_fits_context(model, config.seq_len)  # a refused --seq-len leaves no folder behind
    hold_folder_lock(args, args.out)
    try:
        reader = extract_activations(model, texts, args.out, config, progress=args.progress)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise ValueError(error.strerror) from None  # the writer's explanation; nothing is marked complete
    everything = int(reader.manifest["count"])
    print(f"activation cache: {reader.directory} ({everything} rows of width {reader.d_model} at "
          f"{reader.hook_name}; {reader.num_rows} train, {everything - reader.num_rows} held out)")
    return 0


def _init_distributed(device: str) -> Any:
    import torch.distributed as dist

    from sae_fast.training import DistributedContext

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistributedContext.from_environment()


def cmd_train(args: argparse.Namespace) -> int:
    from sae_fast.commands.outputs import RUN_RESULT, hold_folder_lock, prepare_run_folder, refuse_artefact_path
    from sae_fast.commands.recalibrate import TRAIN_BATCH_SIZE_KEY, recalibrate_after_training, selection_batch_size
    from sae_fast.training import TrainConfig, Trainer, fixed_size_batches, get_recipe

    out = Path(args.out)
    overrides = {}
    if args.checkpoint_dir is None:
        overrides["checkpoint_dir"] = str(out / "checkpoints")
    if args.log_jsonl is None:
        overrides["log_jsonl"] = str(out / "metrics.jsonl")
    config = dataclass_from_args(TrainConfig, args, **overrides)
    context = _init_distributed(config.device)
    if context.is_main:  # before any data is read, so a refused or unwritable --out costs no training
        refuse_artefact_path(out, own="run")
        hold_folder_lock(args, out)  # one run at a time in --out, before anything there is read or written
        prepare_run_folder(out, sae_names=[parse_sae_spec(spec)[0] for spec in args.sae],
                           checkpoint=config.checkpoint_path, resume=config.resume, overwrite=args.overwrite,
                           log_jsonl=None if config.log_jsonl is None else Path(config.log_jsonl),
                           tensorboard_dir=None if config.tensorboard_dir is None else Path(config.tensorboard_dir))
    metadata: dict[str, Any] = {}
    reader = None
    if args.cache:
        from sae_fast.activations import ActivationCacheReader

        reader = ActivationCacheReader(args.cache, split="train", max_norm_ratio=args.max_norm_ratio)
        d_in = reader.d_model
        batches = reader.batches(config.batch_size, seed=config.seed, epochs=args.epochs,
                                 rank=context.rank, world_size=context.world_size)
        data_identity = reader.identity()
        metadata = {"model_name": reader.model_name, "hook_name": reader.hook_name, "activation_cache": args.cache,
                    "activation_cache_identity": data_identity, "sink_filter": reader.sink_filter_stats()}
    else:
        if context.enabled:
            raise ValueError("--live streaming does not shard across ranks; extract a cache and train --cache")
        from sae_fast.activations import ActivationConfig, ActivationStream, text_source_from_spec

        act_config = dataclass_from_args(ActivationConfig, args, prefix="act_", batch_size=config.batch_size,
                                         max_norm_ratio=args.max_norm_ratio)
        model = load_model_by_name(args.model, config.device)
        stream = ActivationStream(model, text_source_from_spec(args.texts), act_config)
        d_in = stream.d_model
        batches = fixed_size_batches(stream, config.batch_size)
        data_identity = None  # a live stream is checked by replaying it (CountingBatches)
        metadata = {"model_name": args.model, "hook_name": act_config.hook_name,
                    "sink_filter": {"max_norm_ratio": act_config.max_norm_ratio,
                                    "median_estimated_from": "first forward batch"}}
    metadata["recipe"] = args.recipe
    config.extra.update(metadata)
    recipe = None if args.recipe == NO_RECIPE else get_recipe(args.recipe)
    saes = build_saes(args.sae, d_in, config.seed, recipe=recipe, batch_size=config.batch_size)
    result = Trainer(saes, config, distributed=context, data_identity=data_identity).train(batches)
    if context.is_main:
        from sae_fast.io import save_pretrained
        from sae_fast.io.atomic import atomic_write_text

        print(f"trained {len(saes)} SAE(s) for {result.steps} steps ({result.tokens_seen} tokens)")
        for change in result.setting_changes:
            print(f"  {change['field']}: {change['checkpoint']} until step {change['step']}, then {change['now']}")
        thetas = {}
        if args.recalibrate:
            thetas = recalibrate_after_training(saes, config, reader=reader, stream=batches,
                                                n_batches=args.recalibrate_batches, world_size=context.world_size)
        sae_metadata = {**metadata, TRAIN_BATCH_SIZE_KEY: selection_batch_size(config, context.world_size)}
        for name, sae in saes.items():
            save_pretrained(sae, out / name, metadata=sae_metadata)
        summary = {"recipe": args.recipe, "steps": result.steps, "tokens_seen": result.tokens_seen,
                   "final_metrics": result.final_metrics, "config": config.to_dict(),
                   "saes": {n: str(out / n) for n in saes},
                   "theta_recalibration": {n: dataclasses.asdict(change) for n, change in thetas.items()},
                   "setting_changes": result.setting_changes}
        atomic_write_text(out / RUN_RESULT, json.dumps(summary, indent=2))
        print(f"saved to {out}")
        for name, metrics in result.final_metrics.items():
            print(f"  {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from sae_fast.activations import ActivationCacheReader
    from sae_fast.activations.cache_format import manifest_field, read_manifest
    from sae_fast.evaluation import EvalConfig, evaluate
    from sae_fast.io import load_pretrained

    split = args.split
    if args.out:
        from sae_fast.commands.outputs import refuse_artefact_path

        refuse_artefact_path(args.out)
    if not Path(args.cache).is_dir():
        raise FileNotFoundError(f"activation cache directory {args.cache} does not exist")
    manifest = read_manifest(Path(args.cache))
    if split == "heldout" and manifest_field(manifest, "heldout_sequences") == 0:
        cause = ("it was extracted before held-out splits existed" if "heldout_fraction" not in manifest
                 else f"it was extracted with heldout_fraction {manifest['heldout_fraction']}"
                 if manifest["heldout_fraction"] == 0
                 else f"its {manifest.get('sequences', 'few')} sequences are too few to hold one out")
        _warn(f"{args.cache} has no held-out split ({cause}): evaluating on ALL its rows, which training may have "
              "seen; re-extract it with `sae-fast cache` (default --heldout-fraction 0.05) for held-out numbers")
        split = "all"
    elif split != "heldout":
        _warn(f"--split {split} evaluates on training rows: the numbers flatter SAEs trained on this cache")
    reader = ActivationCacheReader(args.cache, split=split, max_norm_ratio=args.max_norm_ratio)
    rows = reader.kept_activations(args.max_rows)
    config = EvalConfig(batch_size=args.batch_size, first_position=reader.first_position, progress=args.progress)
    if args.ce_sequences:
        config = dataclasses.replace(
            config, model=load_model_by_name(args.model or reader.model_source, args.device),
            tokens=torch.from_numpy(reader.tokens[: args.ce_sequences].astype("int64")), hook_name=reader.hook_name,
        )
    from sae_fast.commands.provenance import check_sae_against_cache, overlapping_training_rows

    overlaps = {}
    for path in args.sae:  # before any SAE is evaluated: a refusal costs nothing
        check_sae_against_cache(path, reader.manifest, args.cache, args.allow_other_activations)
        overlaps[path] = overlapping_training_rows(path, reader)
        if overlaps[path]:
            _warn(f"{path} was trained on {overlaps[path]} of the {reader.num_rows} {reader.split!r} rows of "
                  f"{args.cache} (the same cache content, extracted with another --heldout-fraction or evaluated "
                  "on another split): its numbers there flatter it; evaluate on rows it was not trained on")
    results = {}
    for path in args.sae:
        sae = load_pretrained(path, device=args.device)
        result = evaluate(sae, rows, config)
        results[path] = {**result.to_dict(), "split": reader.split, "sink_filter": reader.sink_filter_stats(),
                         "training_rows_evaluated": overlaps[path]}
        print(f"{path}: NMSE={result.nmse:.4f} FVE={result.fraction_variance_explained:.4f} "
              f"L0={result.mean_l0:.2f} dead={result.dead_fraction:.3%}"
              + (f" CE+{result.ce_degradation:.4f} nats" if result.ce_degradation is not None else ""))
    if args.out:
        from sae_fast.io.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=2))
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser(recipe: str = NO_RECIPE) -> argparse.ArgumentParser:
    """The ``sae-fast`` parser; ``recipe`` (a name in ``RECIPES``) sets the defaults of ``train``'s flags.

    ``train --recipe NAME`` takes effect through :func:`parse_args`, which builds this parser with it.
    """
    from sae_fast.activations import OFFLINE_DEFAULT_MODEL, ActivationConfig
    from sae_fast.commands.meta import __doc__ as meta_doc
    from sae_fast.commands.meta import add_meta_arguments, cmd_meta
    from sae_fast.commands.inputs import SAE_HELP
    from sae_fast.commands.provenance import add_provenance_flag
    from sae_fast.commands.recalibrate import DEFAULT_BATCHES, cmd_recalibrate
    from sae_fast.commands.stitch import __doc__ as stitch_doc
    from sae_fast.commands.stitch import add_stitch_arguments, cmd_stitch
    from sae_fast.training import RECIPES, TrainConfig

    parser = argparse.ArgumentParser(prog="sae-fast", description=plain_text(__doc__.split("\n\n")[0]))
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{cache,train,eval,recalibrate,stitch,meta}")

    model_help = (f"model: {OFFLINE_DEFAULT_MODEL!r} (SmolLM2-135M, offline), a Hugging Face Hub name "
                  f"(needs network or cache), or {TINY_MODEL!r} (random test model)")
    texts_help = "text source: offline-prose, openwebtext, hf:PATH[:SPLIT[:FIELD]], or local .txt/.jsonl path(s)"

    cache = commands.add_parser("cache", help="extract activations of a model into an on-disk cache",
                                description="Extract activations into a resumable memory-mapped cache.")
    cache.add_argument("--out", required=True, help="cache directory (re-running finishes an interrupted cache)")
    cache.add_argument("--model", default=OFFLINE_DEFAULT_MODEL, help=model_help + " (default: %(default)s)")
    cache.add_argument("--texts", default="offline-prose", help=texts_help + " (default: %(default)s)")
    cache.add_argument("--device", default="cpu", help="device the model runs on")
    cache.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    add_dataclass_arguments(cache, ActivationConfig, skip=("batch_size", "shuffle_buffer_size", "max_norm_ratio"),
                            defaults={"max_tokens": 1_000_000})
    cache.set_defaults(func=cmd_cache)

    train = commands.add_parser(
        "train", help="train one or more SAEs on one activation stream",
        description="Train several SAEs in one pass over one activation stream (a cache or a live model).",
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--cache", help="activation cache directory (from `sae-fast cache`)")
    source.add_argument("--live", action="store_true", help="stream activations from the model (--act-* flags)")
    train.add_argument("--sae", action="append", required=True, metavar="NAME=ARCH:k=v,...",
                       help="an SAE to train, repeatable; ARCH in batchtopk/matryoshka_batchtopk/topk/jumprelu/"
                            "relu, keys are constructor arguments, e.g. btk=batchtopk:d_sae=4096,k=32 (d_in is "
                            "inferred); "
                            "a list is a;b;c, e.g. 'm=matryoshka_batchtopk:d_sae=4096,k=32,"
                            "matryoshka_widths=1024;2048;4096' (quoted: ; ends a shell command)")
    train.add_argument("--out", required=True, help="output directory: one save_pretrained folder per SAE, "
                                                    "train_result.json; checkpoints/ and metrics.jsonl by default")
    train.add_argument("--overwrite", action="store_true",
                       help="--out holds an earlier run: delete its checkpoint, metrics, train_result.json and SAE "
                            "folders first (without this or --resume such an --out is refused)")
    train.add_argument("--recalibrate", action=argparse.BooleanOptionalAction, default=True,
                       help="after training, re-estimate BatchTopK's inference θ with the final weights on fresh "
                            "training batches, so the eval L0 is about k (as `sae-fast recalibrate` does)")
    train.add_argument("--recalibrate-batches", type=int_at_least(1), default=DEFAULT_BATCHES,
                       help="training batches θ is re-estimated on (default: %(default)s)")
    train.add_argument("--epochs", type=int_at_least(1, optional=True), default=None,
                       help="passes over the cache (None: endless, bounded by --total-tokens)")
    train.add_argument("--model", default=OFFLINE_DEFAULT_MODEL, help="with --live: " + model_help + " (default: %(default)s)")
    train.add_argument("--texts", default="offline-prose", help="with --live: " + texts_help + " (default: %(default)s)")
    train.add_argument("--recipe", choices=(NO_RECIPE, *RECIPES), default=NO_RECIPE,
                       help="a paper's settings as defaults: the TrainConfig flags and each --sae spec's missing "
                            "constructor arguments; explicit flags and spec keys win. "
                            + "; ".join(f"{r.name}: {r.description}" for r in RECIPES.values())
                            + " (default: %(default)s; docs/training.md: \"The paper's recipe\")")
    add_dataclass_arguments(
        train, TrainConfig, defaults=RECIPES[recipe].train if recipe in RECIPES else None,
        help_overrides={"checkpoint_dir": "Directory for checkpoint.pt; None (the default) means <--out>/checkpoints "
                                          "(the CLI always checkpoints, so --resume works)."},
    )
    train.add_argument("--max-norm-ratio", type=optional_finite_float, default=None,
                       help="drop attention-sink rows whose norm exceeds this multiple of the median norm "
                            "(with --live the median comes from the first forward batch; default: keep all)")
    add_dataclass_arguments(train, ActivationConfig, prefix="act_",
                            skip=("batch_size", "max_tokens", "cache_dtype", "heldout_fraction", "max_norm_ratio"))
    train.set_defaults(func=cmd_train)

    evaluation = commands.add_parser("eval", help="evaluate saved SAEs on held-out activations",
                                     description="NMSE, variance explained, L0 histogram, dead latents and "
                                                 "(with --ce-sequences) CE degradation of saved SAEs.")
    evaluation.add_argument("--sae", action="append", required=True, help="an SAE (repeatable): " + SAE_HELP)
    evaluation.add_argument("--cache", required=True, help="activation cache (from `sae-fast cache`)")
    evaluation.add_argument("--split", choices=("heldout", "train", "all"), default="heldout",
                            help="rows of the cache to evaluate on (default: %(default)s, never seen by training)")
    evaluation.add_argument("--max-norm-ratio", type=optional_finite_float, default=None,
                            help="drop attention-sink rows above this multiple of the median norm (default: keep all)")
    evaluation.add_argument("--max-rows", type=int_at_least(1, optional=True), default=None, help="evaluate on the first N rows only")
    evaluation.add_argument("--ce-sequences", type=int_at_least(0), default=0,
                            help="also measure CE degradation on the split's first N token sequences")
    evaluation.add_argument("--model", default=None, help="model for CE (default: the one the cache was extracted "
                                                           "with, offline when it was); " + model_help)
    evaluation.add_argument("--batch-size", type=int_at_least(1), default=4096, help="activations per SAE batch")
    evaluation.add_argument("--device", default="cpu", help="device for the SAE and the model")
    evaluation.add_argument("--out", default=None, help="write the results as JSON here")
    evaluation.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    add_provenance_flag(evaluation)
    evaluation.set_defaults(func=cmd_eval)

    recalibrate = commands.add_parser(
        "recalibrate", help="re-estimate BatchTopK's inference threshold θ of saved SAEs",
        description="Re-estimate θ of saved BatchTopK SAEs on training batches so the eval-mode L0 is about k; "
                    "each SAE folder is replaced atomically. Prints θ and L0 before and after.")
    recalibrate.add_argument("--sae", action="append", required=True, help="saved BatchTopK SAE folder (repeatable)")
    recalibrate.add_argument("--cache", required=True, help="the activation cache the SAE was trained on")
    recalibrate.add_argument("--batches", type=int_at_least(1), default=DEFAULT_BATCHES, help="batches θ is estimated on")
    recalibrate.add_argument("--batch-size", type=int_at_least(1, optional=True), default=None,
                             help="tokens per batch (default: the training batch size the SAE folder records)")
    recalibrate.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the batches' order")
    recalibrate.add_argument("--device", default="cpu", help="device for the SAE")
    add_provenance_flag(recalibrate)
    recalibrate.set_defaults(func=cmd_recalibrate)

    stitch = commands.add_parser("stitch", help="SAE stitching analyses of a small and a large SAE (paper §4)",
                                 description=plain_text(stitch_doc.split("\n\n")[0]))
    add_stitch_arguments(stitch)
    stitch.set_defaults(func=cmd_stitch)

    meta = commands.add_parser("meta", help="train a meta-SAE on a saved SAE's decoder rows (paper §5)",
                               description=plain_text(meta_doc.split("\n\n")[0]) + " --n-meta-latents defaults to the "
                                           "paper's ratio, d_sae * 2304 / 49152.")
    add_meta_arguments(meta)
    meta.set_defaults(func=cmd_meta)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; ``train --recipe NAME`` is parsed again with the recipe's values as the defaults.

    As defaults, the recipe's values yield to every flag given explicitly, even one equal to the recipe's
    value or to sae_fast's default. The first parse validates the name (its ``choices`` list the recipes).
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "recipe", NO_RECIPE) != NO_RECIPE:
        args = build_parser(args.recipe).parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    import contextlib

    args = parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # recorded in the folder locks a command holds
    from sae_fast.training import CheckpointError, NonFiniteError

    try:
        with contextlib.ExitStack() as args.held_locks:  # folder locks are released when the command returns
            return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, CheckpointError, NonFiniteError) as error:
        print(f"sae-fast {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only, full or mistyped output path: the path and the fix, not a traceback
        from sae_fast.commands.outputs import os_error_message

        print(f"sae-fast {args.command}: error: {os_error_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
