"""Atomic, integrity-checked training checkpoints, streamed to and from disk.

File layout: an 8-byte magic, the 32-byte SHA-256 of the payload, then the ``torch.save`` payload.
The digest turns a truncated or bit-flipped file into a clear :class:`CheckpointError` naming the
file, instead of an obscure unpickling error or, worse, a silently different model. Files are
written to a temporary name in the same directory and moved into place with ``os.replace``, so a
crash mid-write leaves the previous checkpoint intact.

Neither direction holds the serialised file in memory: ``torch.save`` writes tensor by tensor
straight into the file while the digest is computed on the way (and filled in last), and loading
first hashes the file in chunks, then lets ``torch.load`` read the tensors from the file itself.
A checkpoint of ``N`` bytes therefore costs about ``N`` extra bytes to load (the tensors) and
almost none to write. The bytes on disk are those the earlier in-memory writer produced, so old
checkpoints load unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

import torch

from sae_fast.io.atomic import atomic_open

MAGIC = b"SAEFCKP1"
_HEADER = len(MAGIC) + 32
_CHUNK = 2**20


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or does not match the run."""


class _HashingWriter:
    """A write-only file that hashes what passes through it (all ``torch.save`` needs)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


class _PayloadReader(io.RawIOBase):
    """The payload part of an open checkpoint as a seekable file starting at offset 0 (for ``torch.load``)."""

    def __init__(self, handle: BinaryIO, offset: int) -> None:
        super().__init__()
        self.handle, self.offset = handle, offset
        handle.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.handle.readinto(buffer)

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position += self.offset
        return self.handle.seek(position, whence) - self.offset

    def tell(self) -> int:
        return self.handle.tell() - self.offset


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (tensors, dicts, lists, numbers, strings) atomically to ``path``."""
    with atomic_open(path) as handle:
        handle.write(MAGIC + bytes(32))  # the digest is known only at the end
        writer = _HashingWriter(handle)
        torch.save(payload, writer)
        handle.seek(len(MAGIC))
        handle.write(writer.sha256.digest())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; any damage raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}, so there is nothing to resume (a run stopped before its first checkpoint "
            "leaves none); start the run afresh instead: `sae-fast train --overwrite` (or resume=False) deletes what "
            "the stopped run left, or point to the right checkpoint directory"
        )
    with open(path, "rb") as handle:
        header = handle.read(_HEADER)
        if len(header) < _HEADER or header[: len(MAGIC)] != MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is not an sae_fast checkpoint or is truncated ({os.fstat(handle.fileno()).st_size} "
                "bytes); delete it to start over, or restore a good copy"
            )
        sha256, size = hashlib.sha256(), 0
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            size += len(chunk)
        if sha256.digest() != header[len(MAGIC) :]:
            raise CheckpointError(
                f"checkpoint {path} is truncated or corrupt (SHA-256 mismatch over {size} payload bytes); "
                "delete it to start over, or restore a good copy"
            )
        try:
            payload = torch.load(_PayloadReader(handle, _HEADER), map_location=map_location, weights_only=True)
        except Exception as error:  # the digest matched, so this is a version/format problem
            raise CheckpointError(f"checkpoint {path} could not be deserialised: {error}") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict payload")
    return payload
