"""The paper's BatchTopK sweep: GPT-2 Small, blocks.8.hook_resid_pre, OpenWebText (GPU + Hub).

Appendix setting (section 6) with the reference code's recipe (``sae_fast.training.PAPER``, docs/training.md "The
paper's recipe"): per-token layer_norm inputs, Adam lr 3e-4, betas (0.9, 0.99), batch 4096 activations,
1e9 tokens, aux loss over the top 512 dead latents (coefficient 1/32), a latent dead after 5 batches;
sequences of 128 tokens with BOS, 512 sequences per forward pass, a shuffle buffer of 10 forward passes.
Dictionary sizes 3072/6144/12288/24576 and k in 16/32/64 for BatchTopK and TopK; JumpReLU with sparsity
penalties 0.004/0.0018/0.0008 (matching L0 16/32/64) and bandwidth 0.001. All SAEs train in ONE pass
over ONE activation stream, each with its own Adam.

Needs network access (GPT-2 and OpenWebText from the Hugging Face Hub) and a GPU; not run in tests.

    python examples/train_gpt2_openwebtext.py --device cuda --out runs/gpt2-l8 --sizes 3072 6144 --ks 32

For data-parallel training, extract a cache once (``sae-fast cache --model gpt2 --texts openwebtext
--hook-name blocks.8.hook_resid_pre --first-position 0 --prepend-bos ...``) and run
``torchrun --nproc-per-node N -m sae_fast train --recipe paper --cache ...``: each rank then reads its
own slice of every global batch.
"""

from __future__ import annotations

import argparse
from sae_fast.commands.arguments import HelpFormatter

HOOK_LAYER = 8
SEQ_LEN = 128
MODEL_BATCH_SEQUENCES = 512
BUFFER_MODEL_BATCHES = 10
JUMPRELU_PENALTY = {16: 0.004, 32: 0.0018, 64: 0.0008}  # paper, GPT-2 Small


def build_sweep(d_in: int, sizes: list[int], ks: list[int], batch_size: int, device: str) -> dict:
    from sae_fast import BatchTopKSAE, JumpReLUSAE, TopKSAE
    from sae_fast.training import PAPER

    saes = {}
    for d_sae in sizes:
        for k in ks:
            seed = d_sae + k
            saes[f"batchtopk-{d_sae}-k{k}"] = BatchTopKSAE(
                d_in, d_sae, k, seed=seed, device=device, **PAPER.sae_kwargs("batchtopk", batch_size))
            saes[f"topk-{d_sae}-k{k}"] = TopKSAE(
                d_in, d_sae, k, seed=seed, device=device, **PAPER.sae_kwargs("topk", batch_size))
            if k in JUMPRELU_PENALTY:
                saes[f"jumprelu-{d_sae}-l0_{k}"] = JumpReLUSAE(
                    d_in, d_sae, l0_coefficient=JUMPRELU_PENALTY[k], bandwidth=0.001, seed=seed, device=device,
                    **PAPER.sae_kwargs("jumprelu", batch_size),
                )
    return saes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", default="runs/gpt2-openwebtext-l8", help="output folder")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3072, 6144, 12288, 24576], help="d_sae values trained")
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 32, 64], help="k values trained")
    parser.add_argument("--total-tokens", type=int, default=1_000_000_000, help="training tokens of every SAE")
    parser.add_argument("--model-batch-size", type=int, default=MODEL_BATCH_SEQUENCES,
                        help="sequences per GPT-2 forward pass; lower it if the GPU runs out of memory")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    args = parser.parse_args()
    from sae_fast.commands.outputs import refuse_artefact_path

    refuse_artefact_path(args.out, own="run")  # never write into a cache, an SAE folder or another run

    # The heavy imports wait until after --help, which must work without network or a GPU.
    import torch

    from sae_fast.activations import ActivationConfig, ActivationStream, HFStreamingTexts, load_model, resid_hook_name
    from sae_fast.io import save_pretrained
    from sae_fast.training import PAPER, Trainer, fixed_size_batches

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    hook = resid_hook_name(HOOK_LAYER, "pre")
    config = PAPER.train_config(
        total_tokens=args.total_tokens, device=device, checkpoint_dir=f"{args.out}/checkpoints",
        checkpoint_every=2000, log_jsonl=f"{args.out}/metrics.jsonl", resume=args.resume,
        extra={"model": "gpt2", "hook_name": hook, "dataset": "Skylion007/openwebtext", "recipe": PAPER.name},
    )
    model = load_model("gpt2", device=device)
    # GPT-2 has a BOS token and the reference code keeps every position (layer_norm tames the BOS row's norm).
    activation_config = ActivationConfig(
        hook_name=hook, seq_len=SEQ_LEN, first_position=0, prepend_bos=True, batch_size=config.batch_size,
        model_batch_size=args.model_batch_size,
        shuffle_buffer_size=max(BUFFER_MODEL_BATCHES * args.model_batch_size * SEQ_LEN, 2 * config.batch_size),
    )
    # A live stream resumes (--resume) by replaying the consumed batches, which is exact but slow for
    # long runs; a cache (`sae-fast cache`) resumes instantly.
    stream = ActivationStream(model, HFStreamingTexts("Skylion007/openwebtext"), activation_config, progress=False)
    saes = build_sweep(model.cfg.d_model, args.sizes, args.ks, config.batch_size, device)
    result = Trainer(saes, config).train(fixed_size_batches(stream, config.batch_size))
    for name, sae in saes.items():
        save_pretrained(sae, f"{args.out}/{name}",
                        metadata={"model_name": "gpt2", "hook_name": hook, "recipe": PAPER.name})
    print({name: metrics["nmse"] for name, metrics in result.final_metrics.items()})


if __name__ == "__main__":
    main()
