"""On-disk layout of an activation cache, shared by the writer and the reader.

A cache is a directory holding

- ``activations.bin``: raw ``[capacity_rows, d_model]`` float16/float32 rows, C order, no header, read
  with ``numpy.memmap``; row ``s * rows_per_sequence + (p - first_position)`` is sequence ``s`` at
  position ``p``;
- ``tokens.bin``: raw int32 ``[capacity_sequences, seq_len]`` token ids of those sequences (for CE
  evaluation, top-activating examples and for checking that a resumed extraction reads the same text);
- ``norms.bin`` (when the manifest says ``row_norms: true``): raw float32 ``[capacity_rows]`` L2 norm of
  every stored row, so attention-sink rows can be dropped when reading without a pass over the rows;
- ``manifest.json``: what the rows are (model, hook, seq_len, first_position, dtype, d_model, text source
  fingerprint, ...), how many sequences were asked for (``requested_sequences``), how many the files
  hold (``capacity_sequences``; fewer when the text ran out) and how many are complete (``count``
  rows = ``sequences`` whole sequences). The
  manifest is replaced atomically after the data it counts has been flushed, so ``count`` never
  covers unwritten rows.

Optional manifest fields (caches written before they existed lack them and are read as noted):

- ``heldout_sequences``: the last this-many of the ``capacity_sequences`` are the held-out split, never
  served to training (absent: 0, everything is training data); ``heldout_fraction`` asked for them;
- ``fingerprint``: :func:`content_fingerprint` of the finished cache (absent: computed when read);
- ``model_source``: the name ``load_model`` / ``sae-fast --model`` takes to load the model again
  (``model`` is only its label; absent: guessed from the label);
- ``autocast``: the forward precision (absent: "none", float32).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sae_fast.io.atomic import atomic_write_bytes
from sae_fast.io.reading import read_json

FORMAT_NAME = "sae_fast.activation_cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ACTIVATIONS = "activations.bin"
TOKENS = "tokens.bin"
NORMS = "norms.bin"
TOKEN_DTYPE = np.int32
NORM_DTYPE = np.float32
SPLITS = ("train", "heldout", "all")
FINGERPRINT_ROWS = 1024
"""Activation rows (evenly strided) hashed into the fingerprint besides every token id."""

# Fields that must match for a resumed extraction to continue an existing cache.
IDENTITY_FIELDS = (
    "model", "hook_name", "seq_len", "first_position", "prepend_bos", "dtype", "d_model",
    "text_source", "requested_sequences", "autocast", "heldout_fraction",
)
# Fields every version-1 manifest has had from the start (later ones have LEGACY_DEFAULTS).
REQUIRED_FIELDS = (
    "model", "hook_name", "seq_len", "first_position", "prepend_bos", "dtype", "d_model", "rows_per_sequence",
    "requested_sequences", "capacity_sequences", "text_source", "sequences", "count", "complete",
)
# What a manifest written before a field existed meant by its absence.
LEGACY_DEFAULTS = {"autocast": "none", "heldout_fraction": 0.0, "heldout_sequences": 0, "row_norms": False}


def manifest_field(manifest: dict[str, Any], name: str) -> Any:
    """``manifest[name]``, or what an older cache without the field meant."""
    return manifest.get(name, LEGACY_DEFAULTS.get(name))


def heldout_count(fraction: float, sequences: int) -> int:
    """Sequences held out for ``fraction``: at least one when asked for any, never all of them."""
    if fraction <= 0 or sequences < 2:
        return 0
    return min(sequences - 1, max(1, round(fraction * sequences)))


def split_sequences(manifest: dict[str, Any], split: str) -> tuple[int, int]:
    """``(first, stop)`` sequence indices of ``split`` among the complete sequences.

    The held-out split is the last ``heldout_sequences`` of the planned ``capacity_sequences``, so a
    partial cache never serves to training a sequence that will be held out once it is finished.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    done = manifest["sequences"]
    boundary = min(done, manifest["capacity_sequences"] - manifest_field(manifest, "heldout_sequences"))
    return {"train": (0, boundary), "heldout": (boundary, done), "all": (0, done)}[split]


def row_norms(rows: np.ndarray) -> np.ndarray:
    """float32 L2 norm of each row (accumulated in float32, so float16 rows cannot overflow)."""
    return np.linalg.norm(np.asarray(rows, dtype=np.float32), axis=1).astype(NORM_DTYPE)


def content_fingerprint(tokens: np.ndarray, activations: np.ndarray) -> str:
    """SHA-256 over every token id and ``FINGERPRINT_ROWS`` evenly strided activation rows (cheap)."""
    digest = hashlib.sha256()
    digest.update(f"{tokens.shape}|{activations.shape}|{activations.dtype}".encode())
    digest.update(np.ascontiguousarray(tokens).tobytes())
    stride = max(1, activations.shape[0] // FINGERPRINT_ROWS)
    digest.update(np.ascontiguousarray(activations[::stride]).tobytes())
    return "sha256:" + digest.hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically replace ``directory/manifest.json`` (temp file in the same directory, then rename)."""
    atomic_write_bytes(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not an activation cache: {MANIFEST} is missing")
    try:
        manifest = read_json(path, what="cache manifest")
    except ValueError as error:
        raise ValueError(f"{error}; the cache is corrupt, delete it and extract again") from None
    if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a version-{FORMAT_VERSION} {FORMAT_NAME} manifest "
            f"(format={manifest.get('format')!r}, version={manifest.get('version')!r})"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in manifest]
    if missing:
        raise ValueError(
            f"{path} lacks the field(s) {missing} that every {FORMAT_NAME} manifest has; the manifest was edited "
            "or is corrupt: delete the cache and extract again"
        )
    return manifest


def check_layout(manifest: dict[str, Any]) -> None:
    """Refuse a manifest whose dtype or sizes could not have been written by ``sae-fast cache``: the file
    size alone cannot tell ``int8`` rows of width 2d from ``float16`` rows of width d."""
    from sae_fast.activations.config import CACHE_DTYPES

    if manifest.get("dtype") not in CACHE_DTYPES:
        raise ValueError(f"activation cache manifest: dtype {manifest.get('dtype')!r} is not one a cache is written "
                         f"in {CACHE_DTYPES}; the manifest is corrupt or edited, extract the cache again")
    for name in ("d_model", "seq_len", "rows_per_sequence", "capacity_sequences"):
        value = manifest.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"activation cache manifest: {name} must be an int >= 1, got {value!r}; the manifest "
                             "is corrupt or edited, extract the cache again")


def expected_file_sizes(manifest: dict[str, Any]) -> dict[str, int]:
    """Byte sizes the data files (``activations.bin``, ``tokens.bin``, ``norms.bin``) must have."""
    check_layout(manifest)
    itemsize = np.dtype(manifest["dtype"]).itemsize
    capacity_rows = manifest["capacity_sequences"] * manifest["rows_per_sequence"]
    sizes = {
        ACTIVATIONS: capacity_rows * manifest["d_model"] * itemsize,
        TOKENS: manifest["capacity_sequences"] * manifest["seq_len"] * np.dtype(TOKEN_DTYPE).itemsize,
    }
    if manifest_field(manifest, "row_norms"):
        sizes[NORMS] = capacity_rows * np.dtype(NORM_DTYPE).itemsize
    return sizes


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Raise a clear error when the data files are missing, truncated or inconsistent with the manifest."""
    check_layout(manifest)
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
