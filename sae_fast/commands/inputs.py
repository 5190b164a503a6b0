"""What a command or example script is given on the command line: SAE folders, activation caches, tensor files.

:func:`load_activations` is the one entry point of the stitching scripts and ``sae-fast stitch`` for
"activations": an activation cache folder (from ``sae-fast cache``), the ``activations.bin`` inside one,
or a ``.pt``/``.npy``/``.safetensors`` tensor file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from sae_fast.activations.cache_format import ACTIVATIONS, MANIFEST
from sae_fast.io.saelens import CONFIG_FILENAME

Split = Literal["train", "heldout", "all"]


def folder_kind(path: str | Path) -> Literal["cache", "sae"] | None:
    """``"cache"`` for an activation cache folder, ``"sae"`` for a saved SAE folder, else None."""
    path = Path(path)
    if (path / MANIFEST).is_file() and (path / ACTIVATIONS).exists():
        return "cache"
    if (path / CONFIG_FILENAME).is_file():
        return "sae"
    return None


def open_cache(path: str | Path, split: Split | None = None) -> Any:
    """An :class:`~sae_fast.activations.ActivationCacheReader` of ``path`` for ``split`` (None: all rows)."""
    from sae_fast.activations import ActivationCacheReader

    return ActivationCacheReader(path, split=split or "all")


def load_activations(
    path: str | Path, max_tokens: int | None = None, *, split: Split | None = "heldout",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The first ``max_tokens`` activation rows ``[n, d]`` of a cache folder (``split`` of it) or a tensor file."""
    path = Path(path)
    if path.name == ACTIVATIONS and folder_kind(path.parent) == "cache":
        path = path.parent  # the raw memory map has no shape of its own; its manifest does
    kind = folder_kind(path) if path.is_dir() else None
    if kind == "cache":
        reader = open_cache(path, split)
        return reader.rows(0, max_tokens, dtype=dtype)
    if kind == "sae":
        raise ValueError(
            f"{path} is a saved SAE folder, not activations; pass an activation cache folder (from "
            "`sae-fast cache`, ideally one the SAEs were not trained on) or a .pt/.npy/.safetensors file"
        )
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder but not an activation cache (no {MANIFEST} beside {ACTIVATIONS}); pass a "
            "folder written by `sae-fast cache` or a .pt/.npy/.safetensors file"
        )
    from sae_fast.stitching.figures import load_activation_file

    return load_activation_file(path, max_tokens, dtype)


def add_stream_arguments(parser: Any) -> None:
    """Flags of activations streamed for published SAEs (see :mod:`sae_fast.activations.sae_source`)."""
    import argparse

    from sae_fast.commands.arguments import int_at_least

    parser.add_argument("--model", default=None, help="without --cache: the model to stream activations from "
                        "(default: the SAEs' model_name, e.g. gpt2-small -> gpt2; 'tiny-random' for tests)")
    parser.add_argument("--texts", default=None, help="without --cache: text source (offline-prose, openwebtext, "
                        "hf:PATH[:SPLIT[:FIELD]], or .txt/.jsonl paths; default: the SAEs' dataset_path)")
    parser.add_argument("--hook-name", default=None, help="without --cache: hook to read (default: the SAEs' "
                        "hook_name)")
    parser.add_argument("--seq-len", type=int_at_least(2), default=None, help="without --cache: tokens per sequence "
                        "(default: the SAEs' context_size, else 128); position 0 is dropped")
    parser.add_argument("--prepend-bos", action=argparse.BooleanOptionalAction, default=None,
                        help="without --cache: start sequences with BOS (default: the SAEs' prepend_bos, else no)")


def streamed_activations(references: list[str], args: Any, max_tokens: int) -> tuple[Tensor, dict[str, Any]]:
    """``max_tokens`` rows streamed for the SAEs ``references`` (``add_stream_arguments``'s flags), and a record
    of where they came from."""
    from sae_fast.activations.sae_source import activation_source, stream_sae_activations
    from sae_fast.commands.models import load_model_by_name

    source = activation_source(references, model=args.model, texts=args.texts, hook_name=args.hook_name,
                               seq_len=args.seq_len, prepend_bos=args.prepend_bos, max_tokens=max_tokens)
    rows = stream_sae_activations(source, load_model_by_name(source.model, args.device),
                                  progress=getattr(args, "progress", False))
    return rows.to(torch.float32), {"streamed": {"model": source.model, "texts": source.texts,
                                                 **source.config.to_dict()}}


SAE_HELP = ("a saved SAE folder, a published SAE as RELEASE:ID (e.g. "
            "gpt2-small-res-jb-feature-splitting:blocks.8.hook_resid_pre_768) or hf://OWNER/REPO[/FOLDER][@REVISION]")
ACTIVATIONS_HELP = ("activation cache folder (from `sae-fast cache`; its held-out rows) or a .pt/.npy/.safetensors "
                    "tensor [..., d_in]")
