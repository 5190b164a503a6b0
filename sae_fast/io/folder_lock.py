"""One writer per folder: an OS advisory lock (``flock``) on a lock file inside the folder.

Two ``sae-fast train`` runs on one ``--out`` would interleave their metrics and checkpoints and leave
whichever SAE finished last; two ``cache`` runs would write the same rows. The lock is taken before
anything else is written and held until the command returns. The kernel drops an ``flock`` when its
process dies, even by ``kill -9``, so a crash never leaves a stale lock behind; the file itself stays
(deleting it would let a third process lock a fresh file while the second still holds the old one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".sae-fast.lock"


class FolderBusyError(ValueError):
    """Another process holds the folder's lock."""


def _holder(fd: int) -> str:
    """What the holding process wrote into the lock file (its PID and command), if anything."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
    return "PID not recorded"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock for the ``with`` block; :class:`FolderBusyError` at
    once (no waiting) when another process holds it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{folder} is being written by another process ({_holder(fd)}); wait for it to finish, or "
                "choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # the PID of a finished process would only mislead
    finally:
        os.close(fd)  # closing the descriptor releases the lock
