"""BatchTopK vs TopK vs JumpReLU (paper section 6, Figs. 7, 8 and 9) from one cached activation set.

Sweeps (all SAEs trained in one pass over the same shuffled batches):
- k in --ks at dictionary size --k-sweep-size: BatchTopK, TopK, and JumpReLU with one L0 coefficient
  per k (--jumprelu-coefficients; its L0 is whatever that coefficient gives, as in the paper);
- dictionary sizes --sizes at k = --size-sweep-k: BatchTopK and TopK.
Every SAE is evaluated on held-out tokens: NMSE, L0, and CE degradation with the reconstruction
spliced into the model. The L0 histogram of BatchTopK (Fig. 9) comes from the same evaluation.

CPU, offline, SmolLM2-135M at reduced budgets (default), or GPT-2 from the Hub on a GPU:

    python examples/batchtopk_vs_topk.py --out runs/btk
    python examples/batchtopk_vs_topk.py --model gpt2 --layer 8 --device cuda --train-tokens 50000000 \
        --sizes 3072 6144 12288 24576 --k-sweep-size 12288 --out runs/btk_gpt2

Writes ``batchtopk_vs_topk.json`` and ``batchtopk_vs_topk.png`` under --out.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from sae_fast import BatchTopKSAE, JumpReLUSAE, TopKSAE
from sae_fast.io.atomic import atomic_save_figure, atomic_write_bytes
from sae_fast.commands.arguments import HelpFormatter

ARCHITECTURES = {"batchtopk": BatchTopKSAE, "topk": TopKSAE}


def build_saes(args, d_in: int) -> dict[str, torch.nn.Module]:
    common = dict(seed=args.seed, dead_tokens_threshold=args.dead_tokens)
    saes = {}
    for k, coefficient in zip(args.ks, args.jumprelu_coefficients):
        for arch, cls in ARCHITECTURES.items():
            saes[f"{arch}_m{args.k_sweep_size}_k{k}"] = cls(d_in, args.k_sweep_size, k, **common)
        saes[f"jumprelu_m{args.k_sweep_size}_c{coefficient:g}"] = JumpReLUSAE(
            d_in, args.k_sweep_size, l0_coefficient=coefficient, **common)
    for m in args.sizes:
        for arch, cls in ARCHITECTURES.items():
            saes.setdefault(f"{arch}_m{m}_k{args.size_sweep_k}", cls(d_in, m, args.size_sweep_k, **common))
    return saes


def plot(results: dict, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(24, 4))
    styles = {"batchtopk": "o-", "topk": "s--", "jumprelu": "^:"}
    for arch, style in styles.items():
        sweep = sorted((r for r in results.values() if r["architecture"] == arch and r["d_sae"] == args.k_sweep_size
                        and (arch == "jumprelu" or r["k"] in args.ks)), key=lambda r: r["mean_l0"])
        axes[0].plot([r["mean_l0"] for r in sweep], [r["nmse"] for r in sweep], style, label=arch)
        axes[1].plot([r["mean_l0"] for r in sweep], [r["ce_degradation"] for r in sweep], style, label=arch)
        if arch == "jumprelu":
            continue
        sizes = sorted((r for r in results.values() if r["architecture"] == arch and r["k"] == args.size_sweep_k
                        and r["d_sae"] in args.sizes), key=lambda r: r["d_sae"])
        axes[2].plot([r["d_sae"] for r in sizes], [r["nmse"] for r in sizes], style, label=arch)
        axes[3].plot([r["d_sae"] for r in sizes], [r["ce_degradation"] for r in sizes], style, label=arch)
    axes[0].set(xlabel="L0 (held out)", ylabel="NMSE", title=f"d_sae={args.k_sweep_size}, k sweep")
    axes[1].set(xlabel="L0 (held out)", ylabel="CE degradation (nats)", title=f"d_sae={args.k_sweep_size}, k sweep")
    axes[2].set(xscale="log", xlabel="dictionary size", ylabel="NMSE", title=f"k={args.size_sweep_k}")
    axes[3].set(xscale="log", xlabel="dictionary size", ylabel="CE degradation (nats)", title=f"k={args.size_sweep_k}")
    btk = results[f"batchtopk_m{args.k_sweep_size}_k{args.size_sweep_k}"]
    axes[4].bar(range(len(btk["l0_histogram"])), btk["l0_histogram"], width=1.0)
    axes[4].set(xlabel="active latents per token", ylabel="tokens",
                title=f"BatchTopK k={args.size_sweep_k} L0 distribution (Fig. 9)")
    for ax in axes[:4]:
        ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/batchtopk_vs_topk", help="output folder (cache, SAEs, report)")
    parser.add_argument("--model", default=None, help="Hub name (e.g. gpt2); default: offline SmolLM2-135M")
    parser.add_argument("--layer", type=int, default=15, help="residual-stream layer of the model")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--cache", help="use this finished activation cache instead of extracting one")
    parser.add_argument("--train-tokens", type=int, default=100_000, help="distinct cached training tokens")
    parser.add_argument("--heldout-sequences", type=int, default=32, help="held-out sequences for evaluation")
    parser.add_argument("--ce-sequences", type=int, default=8, help="held-out sequences for CE degradation")
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 32, 64], help="k values of the k sweep")
    parser.add_argument("--jumprelu-coefficients", type=float, nargs="+", default=[0.004, 0.0018, 0.0008],
                        help="one per k (paper's GPT-2 values); JumpReLU's L0 is measured, not set")
    parser.add_argument("--k-sweep-size", type=int, default=1536, help="d_sae of the k sweep")
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 768, 1536, 3072], help="d_sae values of the size sweep")
    parser.add_argument("--size-sweep-k", type=int, default=32, help="k of the size sweep")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the cached training tokens")
    parser.add_argument("--batch-size", type=int, default=2048, help="activations per training step")
    parser.add_argument("--lr", type=float, default=1e-3, help="paper: 3e-4 for 1e9 tokens")
    parser.add_argument("--dead-tokens", type=int, default=100_000, help="a latent is dead after this many training tokens without firing (aux loss)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and SAE initialisation")
    parser.add_argument("--recalibrate-threshold", action="store_true",
                        help="re-estimate BatchTopK's theta on 8 training batches after training")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is often faster on a busy machine)")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out)  # never write into a cache, an SAE folder or another run
    if args.threads:
        torch.set_num_threads(args.threads)
    if len(args.jumprelu_coefficients) != len(args.ks):
        parser.error("--jumprelu-coefficients needs one value per --ks value")

    from sae_fast.activations import (
        ActivationCacheReader,
        ActivationConfig,
        OfflineProse,
        extract_activations,
        load_model,
        resid_hook_name,
    )
    from sae_fast.evaluation import EvalConfig, evaluate
    from sae_fast.training import ShuffledBatches, TrainConfig, Trainer

    out = Path(args.out)
    model = load_model(args.model, device=args.device) if args.model else load_model(device=args.device)
    if args.cache:  # reuse an extraction (e.g. the one examples/meta_sae.py made) as is
        reader = ActivationCacheReader(args.cache)
        hook = reader.hook_name
    else:
        hook = resid_hook_name(args.layer)
        per_sequence = ActivationConfig(hook_name=hook).rows_per_sequence
        config = ActivationConfig(hook_name=hook, seed=args.seed,
                                  max_tokens=args.train_tokens + args.heldout_sequences * per_sequence)
        reader = extract_activations(model, OfflineProse(seed=args.seed), out / "cache", config, progress=True)
    per_sequence = reader.manifest["rows_per_sequence"]
    n_sequences = reader.tokens.shape[0]
    if n_sequences <= args.heldout_sequences:
        parser.error(f"the cache holds {n_sequences} sequences; hold out fewer than that")
    split = (n_sequences - args.heldout_sequences) * per_sequence
    train_rows, heldout_rows = reader.activations[:split], reader.activations[split:]
    heldout_tokens = torch.from_numpy(reader.tokens[n_sequences - args.heldout_sequences:].astype("int64"))

    saes = build_saes(args, reader.d_model)
    train = TrainConfig(lr=args.lr, batch_size=args.batch_size, total_tokens=None, seed=args.seed,
                        device=args.device, progress=True)
    batches = ShuffledBatches(train_rows, args.batch_size, seed=args.seed, epochs=args.epochs)
    result = Trainer(saes, train).train(batches)
    if args.recalibrate_threshold:
        # theta is a running mean over training that still remembers early batches in short runs,
        # which lets eval-mode L0 exceed k; re-estimate it with the final weights.
        for sae in saes.values():
            if isinstance(sae, BatchTopKSAE):
                calibration = ShuffledBatches(train_rows, args.batch_size, seed=args.seed + 1, epochs=1)
                sae.recalibrate_threshold(batch for _, batch in zip(range(8), calibration))
    results = {}
    eval_config = EvalConfig(model=model, tokens=heldout_tokens[: args.ce_sequences], hook_name=hook,
                             first_position=reader.first_position, ce_batch_size=4)
    for name, sae in saes.items():
        evaluation = evaluate(sae, heldout_rows, eval_config)
        if eval_config.reference_losses is None:  # the SAE-independent losses, measured once
            eval_config = replace(eval_config, reference_losses=evaluation)
        results[name] = {**evaluation.to_dict(), "k": getattr(sae, "k", None)}
        print(f"{name:>28}: NMSE {evaluation.nmse:.4f} L0 {evaluation.mean_l0:7.2f} "
              f"CE degradation {evaluation.ce_degradation:.4f} dead {evaluation.dead_fraction:.1%}")
    report = {"args": vars(args), "model": reader.model_name, "hook": hook, "train_tokens": split,
              "heldout_tokens": int(heldout_rows.shape[0]),
              "token_passes": result.tokens_seen, "steps": result.steps, "results": results}
    atomic_write_bytes(out / "batchtopk_vs_topk.json", json.dumps(report, indent=1).encode())
    plot(results, args, out / "batchtopk_vs_topk.png")
    print(f"wrote {out / 'batchtopk_vs_topk.json'} and .png")


if __name__ == "__main__":
    main()
