"""The paper's BatchTopK sweep: GPT-2 Small, residual stream after layer 8, OpenWebText (GPU + Hub).

Appendix setting (section 6): sequences of 128 tokens, Adam lr 3e-4, betas (0.9, 0.99), batch 4096
activations, 1e9 tokens; dictionary sizes 3072/6144/12288/24576 and k in 16/32/64 for BatchTopK and
TopK; JumpReLU with sparsity penalties 0.004/0.0018/0.0008 (matching L0 16/32/64) and bandwidth
0.001. All SAEs train in ONE pass over ONE activation stream, each with its own Adam.

Needs network access (GPT-2 and OpenWebText from the Hugging Face Hub) and a GPU; not run in tests.

    python examples/train_gpt2_openwebtext.py --out runs/gpt2-l8 --sizes 3072 6144 --ks 32

For data-parallel training, extract a cache once (``sae-fast cache --model gpt2 --texts openwebtext
--hook-name blocks.8.hook_resid_post --first-position 0 --prepend-bos ...``) and run
``torchrun --nproc-per-node N -m sae_fast train --cache ...``: each rank then reads its own slice
of every global batch.
"""

from __future__ import annotations

import argparse
import torch

from sae_fast import BatchTopKSAE, JumpReLUSAE, TopKSAE
from sae_fast.activations import ActivationConfig, ActivationStream, HFStreamingTexts, load_model, resid_hook_name
from sae_fast.io import save_pretrained
from sae_fast.training import TrainConfig, Trainer, fixed_size_batches

JUMPRELU_PENALTY = {16: 0.004, 32: 0.0018, 64: 0.0008}  # paper, GPT-2 Small


def build_sweep(d_in: int, sizes: list[int], ks: list[int], device: str) -> dict:
    saes = {}
    for d_sae in sizes:
        for k in ks:
            saes[f"batchtopk-{d_sae}-k{k}"] = BatchTopKSAE(d_in, d_sae, k, seed=d_sae + k, device=device)
            saes[f"topk-{d_sae}-k{k}"] = TopKSAE(d_in, d_sae, k, seed=d_sae + k, device=device)
            if k in JUMPRELU_PENALTY:
                saes[f"jumprelu-{d_sae}-l0_{k}"] = JumpReLUSAE(
                    d_in, d_sae, l0_coefficient=JUMPRELU_PENALTY[k], bandwidth=0.001, seed=d_sae + k, device=device
                )
    return saes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpt2-openwebtext-l8")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3072, 6144, 12288, 24576])
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--total-tokens", type=int, default=1_000_000_000)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"

    model = load_model("gpt2", device=device)
    hook = resid_hook_name(8)
    config = TrainConfig(
        total_tokens=args.total_tokens, device=device, checkpoint_dir=f"{args.out}/checkpoints",
        checkpoint_every=2000, log_jsonl=f"{args.out}/metrics.jsonl", resume=args.resume,
        extra={"model": "gpt2", "hook_name": hook, "dataset": "Skylion007/openwebtext"},
    )
    # GPT-2 has a BOS token; the paper keeps every position, so first_position=0 with a prepended BOS.
    activation_config = ActivationConfig(
        hook_name=hook, seq_len=128, first_position=0, prepend_bos=True, batch_size=config.batch_size,
        shuffle_buffer_size=64 * config.batch_size, model_batch_size=64,
    )
    # A live stream resumes (--resume) by replaying the consumed batches, which is exact but slow for
    # long runs; a cache (`sae-fast cache`) resumes instantly.
    stream = ActivationStream(model, HFStreamingTexts("Skylion007/openwebtext"), activation_config, progress=False)
    saes = build_sweep(model.cfg.d_model, args.sizes, args.ks, device)
    result = Trainer(saes, config).train(fixed_size_batches(stream, config.batch_size))
    for name, sae in saes.items():
        save_pretrained(sae, f"{args.out}/{name}", metadata={"model_name": "gpt2", "hook_name": hook})
    print({name: metrics["nmse"] for name, metrics in result.final_metrics.items()})


if __name__ == "__main__":
    main()
