"""Atomic, integrity-checked training checkpoints.

File layout: an 8-byte magic, the 32-byte SHA-256 of the payload, then the ``torch.save`` payload.
The digest turns a truncated or bit-flipped file into a clear :class:`CheckpointError` naming the
file, instead of an obscure unpickling error or, worse, a silently different model. Files are
written to a temporary name in the same directory and moved into place with ``os.replace``, so a
crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from sae_fast.io.atomic import atomic_write_bytes

MAGIC = b"SAEFCKP1"
_HEADER = len(MAGIC) + 32


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or does not match the run."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (tensors, dicts, lists, numbers, strings) atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    atomic_write_bytes(path, MAGIC + hashlib.sha256(body).digest() + body)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; any damage raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}, so there is nothing to resume (a run stopped before its first checkpoint "
            "leaves none); start the run afresh instead: `sae-fast train --overwrite` (or resume=False) deletes what "
            "the stopped run left, or point to the right checkpoint directory"
        )
    data = path.read_bytes()
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            f"checkpoint {path} is not an sae_fast checkpoint or is truncated ({len(data)} bytes); "
            "delete it to start over, or restore a good copy"
        )
    digest, body = data[len(MAGIC) : _HEADER], data[_HEADER:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt (SHA-256 mismatch over {len(body)} payload bytes); "
            "delete it to start over, or restore a good copy"
        )
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as error:  # the digest matched, so this is a version/format problem
        raise CheckpointError(f"checkpoint {path} could not be deserialised: {error}") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict payload")
    return payload
