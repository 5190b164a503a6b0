"""Meta-SAE on an SAE's decoder (paper section 5, Fig. 6, Fig. 23, Table 1-style decompositions).

On the fly (offline, CPU): extract SmolLM2-135M activations, train one BatchTopK SAE to decompose
plus smaller reference SAEs (one pass), train the meta-SAE, compare, substitute, explain:

    python examples/meta_sae.py --out runs/meta --d-sae 4096 --reference-sizes 128 256 512

On a pretrained SAE (any format sae_fast.load_pretrained reads), with optional references and an
activation cache of the same model/hook for the context page:

    python examples/meta_sae.py --sae path/to/sae --reference path/to/smaller_sae --cache runs/meta/cache

Writes ``meta_sae.json`` (FVE, decompositions, Fig. 6 and Fig. 23 numbers), ``meta_sae.png`` and
``contexts/index.html`` + ``index.md`` under ``--out``. Paper scale: ``--d-sae 49152 --meta-latents 2304
--meta-epochs 2000`` (GPU).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sae_fast import BatchTopKSAE
from sae_fast.meta import (
    MetaDecomposition,
    MetaSAEConfig,
    cache_context_lookup,
    collect_top_activations,
    compare_with_saes,
    decoder_substitution,
    latent_cards,
    meta_latent_cards,
    plot_meta_report,
    train_meta_sae,
    write_context_page,
)
from sae_fast.io.atomic import atomic_write_bytes
from sae_fast.commands.arguments import HelpFormatter


def train_saes_on_smollm2(args, out: Path):
    """One cached extraction, one training pass for the SAE to decompose and the references."""
    from sae_fast.activations import ActivationConfig, OfflineProse, extract_activations, load_model, resid_hook_name
    from sae_fast.training import ShuffledBatches, TrainConfig, Trainer

    model = load_model()
    config = ActivationConfig(hook_name=resid_hook_name(args.layer), max_tokens=args.train_tokens, seed=args.seed)
    reader = extract_activations(model, OfflineProse(seed=args.seed), out / "cache", config, progress=True)
    sizes = {"decomposed": args.d_sae, **{f"sae{m}": m for m in args.reference_sizes}}
    saes = {name: BatchTopKSAE(reader.d_model, m, args.k, seed=args.seed + i, dead_tokens_threshold=args.dead_tokens)
            for i, (name, m) in enumerate(sizes.items())}
    train = TrainConfig(lr=args.lr, batch_size=args.batch_size, total_tokens=None, seed=args.seed, progress=True)
    Trainer(saes, train).train(ShuffledBatches(reader.activations, args.batch_size, seed=args.seed, epochs=args.epochs))
    references = {name: sae for name, sae in saes.items() if name != "decomposed"}
    return saes["decomposed"], references, reader, model.tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/meta", help="output folder (SAEs, meta-SAE, report)")
    parser.add_argument("--sae", help="pretrained SAE to decompose (else one is trained on SmolLM2)")
    parser.add_argument("--reference", action="append", default=[], help="pretrained reference SAE (repeatable)")
    parser.add_argument("--cache", help="activation cache (extract_activations) of the --sae's model/hook")
    parser.add_argument("--layer", type=int, default=15, help="residual-stream layer of the model")
    parser.add_argument("--train-tokens", type=int, default=200_000, help="distinct cached training tokens (when training the SAE)")
    parser.add_argument("--d-sae", type=int, default=4096, help="latents of the SAE trained when no --sae is given")
    parser.add_argument("--k", type=int, default=32, help="active latents per token (BatchTopK: batch average)")
    parser.add_argument("--reference-sizes", type=int, nargs="*", default=[128, 256, 512], help="d_sae of the small reference SAEs trained when no --reference is given")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the cached training tokens")
    parser.add_argument("--batch-size", type=int, default=2048, help="activations per training step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the SAEs")
    parser.add_argument("--dead-tokens", type=int, default=100_000, help="a latent is dead after this many training tokens without firing (aux loss)")
    parser.add_argument("--meta-latents", type=int, help="default: d_sae * 2304 / 49152 (the paper's ratio)")
    parser.add_argument("--meta-k", type=int, default=4, help="active meta-latents per decoder row")
    parser.add_argument("--meta-epochs", type=int, default=500, help="meta-SAE training passes over the decoder rows")
    parser.add_argument("--meta-lr", type=float, default=1e-3, help="paper: 1e-4 for 2000 epochs")
    parser.add_argument("--substitution-epochs", type=int, default=200, help="training passes of the substituted SAE")
    parser.add_argument("--examples", type=int, default=8, help="latents / meta-latents shown")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and SAE initialisation")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is often faster on a busy machine)")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out)  # never write into a cache, an SAE folder or another run
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)

    reader = tokenizer = None
    if args.sae:
        from sae_fast import load_pretrained

        sae = load_pretrained(args.sae, device=args.device)
        references = {Path(p).name: load_pretrained(p, device=args.device) for p in args.reference}
        if args.cache:
            from sae_fast.activations import SMOLLM2_HUB_NAME, ActivationCacheReader, load_model

            reader = ActivationCacheReader(args.cache)
            offline = reader.model_name == SMOLLM2_HUB_NAME  # the offline GGUF, never the Hub
            tokenizer = (load_model() if offline else load_model(reader.model_name)).tokenizer
    else:
        sae, references, reader, tokenizer = train_saes_on_smollm2(args, out)

    n_meta = args.meta_latents or max(args.meta_k, round(sae.d_sae * 2304 / 49152))
    config = MetaSAEConfig(n_meta_latents=n_meta, k=args.meta_k, epochs=args.meta_epochs,
                           train={"lr": args.meta_lr, "seed": args.seed, "device": args.device})
    meta = train_meta_sae(sae, config)
    report = {"meta_sae": meta.summary(), "config": config.to_dict(), "decomposed_sae": sae.config_dict()}
    print(f"meta-SAE {sae.d_sae} -> {n_meta} meta-latents, k={args.meta_k}: "
          f"FVE of the decoder rows {meta.fraction_variance_explained:.4f} (paper: 0.5547 at 49152 -> 2304)")

    decomposition = MetaDecomposition(meta.meta_sae, meta.rows)
    counts = decomposition.meta_latent_counts()
    report["decompositions"] = [decomposition.of(i).to_dict() for i in range(min(args.examples, sae.d_sae))]
    report["meta_latent_usage"] = {"mean_latents_per_meta_latent": float(counts.float().mean()),
                                   "unused_meta_latents": int((counts == 0).sum())}
    substitution = None
    if references:
        distributions = compare_with_saes(meta.meta_sae, references)
        report["max_cos_vs_references"] = {name: d.summary() for name, d in distributions.items()}
        closest = min(references, key=lambda name: abs(references[name].d_sae - n_meta))
        substitution = decoder_substitution(meta.meta_sae, meta.rows, references[closest], config,
                                            retrain_epochs=args.substitution_epochs, seed=args.seed)
        report["substitution"] = {"reference": closest, **substitution.summary()}
        for name, d in distributions.items():
            print(f"  vs {name}: median max-cos {float(d.max_cos.median()):.3f}")
        print(f"  substitution by {closest}: {substitution.summary()}")
    else:
        distributions = {}
    if reader is not None:
        rows = reader.activations
        chunks = (torch.from_numpy(rows[s : s + 4096].astype("float32")) for s in range(0, rows.shape[0], 4096))
        tracker = collect_top_activations(sae, chunks, n_top=10)
        lookup = cache_context_lookup(reader, tokenizer)
        busiest = torch.argsort(counts, descending=True)[: args.examples].tolist()
        pages = {
            "Latents": latent_cards(tracker, lookup, range(args.examples)),
            "Meta-latents (most used)": meta_latent_cards(decomposition, tracker, lookup, busiest),
        }
        html_path, _ = write_context_page(out / "contexts", pages, title="SmolLM2 SAE latents and meta-latents")
        report["context_page"] = str(html_path)
    atomic_write_bytes(out / "meta_sae.json", json.dumps(report, indent=1).encode())
    plot_meta_report(out / "meta_sae.png", distributions, substitution,
                     title=f"meta-SAE: {sae.d_sae} latents -> {n_meta} meta-latents (k={args.meta_k})")
    print(f"wrote {out / 'meta_sae.json'}, {out / 'meta_sae.png'}")


if __name__ == "__main__":
    main()
