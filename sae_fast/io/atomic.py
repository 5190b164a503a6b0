"""Atomic writes: nothing a user trained or measured is ever left half-written by a crash.

:func:`atomic_write_bytes` replaces one file. :func:`atomic_directory` replaces a whole save directory at once.

The files of one save (config, weights, state) only make sense together, so they are written into
a fresh temporary directory beside the target and swapped in by renames: a reader sees either the
complete old save or the complete new one. POSIX cannot rename a directory over a non-empty one,
so the old directory is first renamed aside and deleted only after the new one is in place; if the
process dies between those two renames, the old save survives intact under ``.<name>.old-*``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path


def _current_umask() -> int:
    # os.umask can only be read by setting it, so set it back at once.
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _ordinary_permissions(directory: Path) -> None:
    """What a plain ``open``/``mkdir`` would give: mkdtemp makes the folder 0700, and some writers
    (safetensors) make their files 0600, which would leave a shared save unreadable to others."""
    umask = _current_umask()
    os.chmod(directory, 0o777 & ~umask)
    for entry in directory.iterdir():
        if entry.is_file():
            os.chmod(entry, 0o666 & ~umask)


def _fsync_tree(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_file():
            with open(entry, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory; the data is synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, replaceable: Collection[str]) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it becomes ``target``, on error it is removed.

    An existing ``target`` is replaced only if it holds nothing but files named in ``replaceable``
    (the files a save writes), so a save never deletes files it did not write.
    """
    target = Path(os.path.abspath(target))  # so "." or "run/" still have a real name and parent
    if target.exists() and not target.is_dir():
        raise ValueError(f"cannot save into {target}: it exists and is not a directory; choose another path")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in replaceable or not p.is_file())
        if foreign:
            raise ValueError(
                f"refusing to replace {target}: it holds files a save did not write ({foreign[:5]}); "
                "save into an empty or new directory, or move those files away"
            )
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        yield staging
        _ordinary_permissions(staging)
        _fsync_tree(staging)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            old = aside / target.name
            os.replace(target, old)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old, target)  # put the previous save back where it was
                shutil.rmtree(aside, ignore_errors=True)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
        _fsync_directory(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Render a matplotlib figure to PNG in memory, then write it with :func:`atomic_write_bytes`."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))
