"""On-disk layout of an activation cache, shared by the writer and the reader.

A cache is a directory holding

- ``activations.bin``: raw ``[capacity_rows, d_model]`` float16/float32 rows, C order, no header, read
  with ``numpy.memmap``; row ``s * rows_per_sequence + (p - first_position)`` is sequence ``s`` at
  position ``p``;
- ``tokens.bin``: raw int32 ``[capacity_sequences, seq_len]`` token ids of those sequences (for CE
  evaluation, top-activating examples and for checking that a resumed extraction reads the same text);
- ``manifest.json``: what the rows are (model, hook, seq_len, first_position, dtype, d_model, text source
  fingerprint, ...), how many sequences were asked for (``requested_sequences``), how many the files
  hold (``capacity_sequences``; fewer when the text ran out) and how many are complete (``count``
  rows = ``sequences`` whole sequences). The
  manifest is replaced atomically after the data it counts has been flushed, so ``count`` never
  covers unwritten rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sae_fast.io.atomic import atomic_write_bytes

FORMAT_NAME = "sae_fast.activation_cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ACTIVATIONS = "activations.bin"
TOKENS = "tokens.bin"
TOKEN_DTYPE = np.int32

# Fields that must match for a resumed extraction to continue an existing cache.
IDENTITY_FIELDS = (
    "model", "hook_name", "seq_len", "first_position", "prepend_bos", "dtype", "d_model",
    "text_source", "requested_sequences",
)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically replace ``directory/manifest.json`` (temp file in the same directory, then rename)."""
    atomic_write_bytes(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not an activation cache: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the cache is corrupt, delete it and extract again") from None
    if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a version-{FORMAT_VERSION} {FORMAT_NAME} manifest "
            f"(format={manifest.get('format')!r}, version={manifest.get('version')!r})"
        )
    return manifest


def expected_file_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    """Byte sizes ``activations.bin`` and ``tokens.bin`` must have for ``manifest``."""
    itemsize = np.dtype(manifest["dtype"]).itemsize
    capacity_rows = manifest["capacity_sequences"] * manifest["rows_per_sequence"]
    return {
        ACTIVATIONS: capacity_rows * manifest["d_model"] * itemsize,
        TOKENS: manifest["capacity_sequences"] * manifest["seq_len"] * np.dtype(TOKEN_DTYPE).itemsize,
    }


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Raise a clear error when the data files are missing, truncated or inconsistent with the manifest."""
    sequences, count = manifest["sequences"], manifest["count"]
    if not 0 <= sequences <= manifest["capacity_sequences"] or count != sequences * manifest["rows_per_sequence"]:
        raise ValueError(
            f"{directory / MANIFEST} is inconsistent: count={count}, sequences={sequences}, "
            f"rows_per_sequence={manifest['rows_per_sequence']}, capacity_sequences={manifest['capacity_sequences']}; "
            "delete the cache and extract again"
        )
    for name, size in expected_file_sizes(manifest).items():
        path = directory / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            raise ValueError(
                f"activation cache {directory} is truncated or inconsistent: {name} has "
                f"{'no file' if actual is None else f'{actual} bytes'}, the manifest needs {size} bytes; "
                "delete the cache directory and extract again"
            )
