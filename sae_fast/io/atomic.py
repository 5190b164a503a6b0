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
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO


def _owner_tag() -> str:
    """``pid@host`` of this process, written into every temporary name so a later run can tell
    the leftovers of a process that was killed from those of one still writing."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _stale_leftovers(folder: Path, name: str) -> list[tuple[str, Path]]:
    """``(kind, path)`` of the temporaries for ``name`` in ``folder`` left by dead processes of this host.

    Only names this module creates match (``.<name>.tmp-<pid>@<host>-*``, ``.<name>.old-<pid>@<host>-*``,
    ``.<name>.<pid>@<host>.*.tmp``), so nothing else in the folder is ever touched.
    """
    host = re.escape(socket.gethostname())
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:(tmp|old)-(\d+)@{host}-.+|(\d+)@{host}\..+\.tmp)$")
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not _is_alive(int(match.group(2) or match.group(3))):
            found.append((match.group(1) or "tmp", entry))
    return found


def remove_stale_leftovers(target: str | os.PathLike) -> None:
    """Delete what killed writes of ``target`` left beside it (staging folders, temporary files).

    A folder set aside by :func:`atomic_directory` (``.old-``) holds the previous save; if the kill came
    before the new save was in place it is the only copy, so it is moved back instead of deleted.
    """
    target = Path(os.path.abspath(target))
    for kind, path in _stale_leftovers(target.parent, target.name):
        previous = path / target.name
        if kind == "old" and previous.is_dir() and not target.exists():
            os.replace(previous, target)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse with ENOSPC, naming ``folder``, when its disk has less than ``needed`` bytes free.

    Checked before a write of known size, so a full disk is reported up front instead of as a
    serialiser's traceback halfway through.
    """
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"{what} needs {needed / 2**20:.1f} MiB but only {free / 2**20:.1f} MiB are free on that disk",
            str(folder),
        )


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` with ``path`` as its filename when the OS did not name one (e.g. a failed ``write``)."""
    if error.filename is not None:
        return error
    return OSError(error.errno, error.strerror or str(error), str(path))


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike, replaceable: Collection[str], *, needed_bytes: int = 0
) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it becomes ``target``, on error it is removed.

    An existing ``target`` is replaced only if it holds nothing but files named in ``replaceable``
    (the files a save writes), so a save never deletes files it did not write. ``needed_bytes``
    (what the save will write) is checked against the free disk space first; an ``OSError`` always
    names a path.
    """
    target = Path(os.path.abspath(target))  # so "." or "run/" still have a real name and parent
    remove_stale_leftovers(target)  # first: it may restore a previous save a killed write set aside
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
    check_free_space(parent, needed_bytes, f"saving {target}")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{_owner_tag()}-", dir=parent))
    try:
        yield staging
        _ordinary_permissions(staging)
        _fsync_tree(staging)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{_owner_tag()}-", dir=parent))
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
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise _naming(error, target) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write (and seek in) that replaces ``path`` only once the block succeeds.

    It is a temporary file in the same directory, fsynced and renamed over ``path`` at the end; on
    any error it is removed and ``path`` is left as it was. Writers that stream (checkpoints) use
    it so the whole file never has to sit in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file ordinary permissions
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _naming(error, path) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    with atomic_open(path) as handle:
        handle.write(data)


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
