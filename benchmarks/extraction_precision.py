"""Extraction speed and error of bfloat16 autocast against float32 on the offline SmolLM2 (no pytest).

    .venv/bin/python benchmarks/extraction_precision.py --sequences 20 --seq-len 128

Both precisions run on the same token sequences, alternating batch by batch so that load from other
processes perturbs them alike. The relative error is ``‖a_bf16 - a_fp32‖ / ‖a_fp32‖`` over every row
except position 0 (the attention sink, which extraction drops by default).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from sae_fast.activations import OfflineProse, load_model, resid_hook_name, token_sequences
from sae_fast.activations.stream import activation_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--batch", type=int, default=4, help="sequences per forward pass")
    args = parser.parse_args()

    model = load_model()
    hook = resid_hook_name(args.layer)
    sequences = list(itertools.islice(token_sequences(OfflineProse(), model.tokenizer, args.seq_len), args.sequences))
    tokens = torch.stack(sequences)
    activation_rows(model, tokens[:1], hook, 1, "bfloat16")  # warm-up: first calls pay one-off costs
    activation_rows(model, tokens[:1], hook, 1, "none")
    seconds = {"none": 0.0, "bfloat16": 0.0}
    rows: dict[str, list[torch.Tensor]] = {"none": [], "bfloat16": []}
    for batch in tokens.split(args.batch):
        for mode in seconds:
            start = time.perf_counter()
            rows[mode].append(activation_rows(model, batch, hook, 1, mode))
            seconds[mode] += time.perf_counter() - start
    full, half = torch.cat(rows["none"]), torch.cat(rows["bfloat16"])
    error = float((half - full).norm() / full.norm())
    n_tokens = tokens.numel()
    for mode, spent in seconds.items():
        print(f"{mode:>9}: {n_tokens / spent:8.0f} tokens/s ({spent:.2f} s for {n_tokens} tokens)")
    print(f"speed-up bfloat16 / float32: {seconds['none'] / seconds['bfloat16']:.2f}x; "
          f"relative error (positions >= 1): {error:.4f}")


if __name__ == "__main__":
    main()
