"""Where commands write: never into another run's folder unless asked, never into a cache or an SAE
folder, and a clear message instead of a traceback when the file system says no.

A training run writes into ``--out``: ``train_result.json``, one SAE folder per ``--sae`` name, and by
default ``checkpoints/checkpoint.pt`` and ``metrics.jsonl``. Starting a second run there would overwrite
the first run's checkpoint, append to its metrics and leave its other SAE folders looking like results
of the new run, so :func:`prepare_run_folder` refuses unless the user says ``--resume`` (same run) or
``--overwrite`` (delete the earlier run's files first).

Every command that writes passes each output path through :func:`refuse_artefact_path` first: a path that
is, or lies inside, an activation cache, a saved SAE or a training run's folder is refused, except the
one artefact the command was asked to write (``cache`` finishing its own cache, ``train`` its own run).
Commands that write a folder hold its :mod:`~sae_fast.io.folder_lock` while they run.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sae_fast.commands.inputs import folder_kind
from sae_fast.io.folder_lock import folder_lock

RUN_RESULT = "train_result.json"
RUN_CHECKPOINT = Path("checkpoints") / "checkpoint.pt"
ARTEFACT_NAMES = {"cache": "an activation cache", "sae": "a saved SAE folder", "run": "a training run's folder"}


def artefact_kind(path: str | Path) -> str | None:
    """``"cache"``, ``"sae"`` or ``"run"`` (a folder ``sae-fast train`` wrote) for a folder, else None."""
    path = Path(path)
    kind = folder_kind(path)
    if kind is None and ((path / RUN_RESULT).is_file() or (path / RUN_CHECKPOINT).is_file()):
        kind = "run"
    return kind


def refuse_artefact_path(path: str | Path, flag: str = "--out", *, own: str | None = None) -> None:
    """Raise if writing ``path`` would modify a cache, a saved SAE or a run folder: ``path`` is one, or
    a file or folder inside one (symbolic links followed). ``own`` is the kind of artefact the command
    itself writes at ``path`` (``"cache"`` for ``cache --out``, ``"run"`` for ``train --out``)."""
    given = Path(os.path.abspath(path))
    for candidate in dict.fromkeys((given, given.resolve())):
        for depth, folder in enumerate((candidate, *candidate.parents)):
            kind = artefact_kind(folder) if folder.is_dir() else None
            if kind is None or (depth == 0 and kind == own):
                continue
            where = f"is {ARTEFACT_NAMES[kind]}" if depth == 0 else f"is inside {folder}, {ARTEFACT_NAMES[kind]}"
            raise ValueError(f"{flag} {path} {where}; writing there would change it. Give a path outside "
                             "caches, SAE folders and run folders, e.g. runs/<name>")


def hold_folder_lock(args: object, folder: str | Path) -> None:
    """Lock ``folder`` (:func:`~sae_fast.io.folder_lock.folder_lock`) until the command returns:
    ``sae_fast.cli.main`` gives each command an ``ExitStack`` as ``args.held_locks``."""
    stack = getattr(args, "held_locks", None)
    if stack is None:
        raise RuntimeError("run commands through sae_fast.cli.main, which releases their folder locks")
    stack.enter_context(folder_lock(folder, "sae-fast " + " ".join(getattr(args, "argv", None) or [])))


def previous_run_files(out: Path, written: Iterable[Path | None]) -> list[Path]:
    """Files and SAE folders of an earlier run that this run would overwrite, append to, or leave stale."""
    found = [path for path in written if path is not None and path.is_file()]
    if out.is_dir():
        # Every saved SAE directly under --out belongs to a run, whether or not this run reuses its name.
        found += sorted(child for child in out.iterdir() if child.is_dir() and folder_kind(child) == "sae")
    return found


def prepare_run_folder(
    out: str | Path, *, sae_names: Iterable[str], checkpoint: Path | None, log_jsonl: Path | None,
    resume: bool, overwrite: bool, tensorboard_dir: Path | None = None,
) -> None:
    """Check ``out`` before any training: an input folder or another run's folder is refused (unless
    ``resume`` or ``overwrite``), and every folder the run writes into must be writable.

    With ``overwrite`` everything is checked before anything is deleted (see :func:`_delete_together`)."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it; pass only one")
    refuse_artefact_path(out, own="run")
    for flag, path in (("--checkpoint-dir", checkpoint), ("--log-jsonl", log_jsonl),
                       ("--tensorboard-dir", tensorboard_dir)):
        if path is not None and not _inside(path, out):
            refuse_artefact_path(path, flag)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run's results")
    for name in sae_names:
        if (out / name).exists() and folder_kind(out / name) != "sae":
            raise ValueError(f"{out / name} exists and is not a saved SAE, so the SAE {name!r} could not be saved "
                             "there; move it away or give the --sae another name")
    previous = previous_run_files(out, [checkpoint, log_jsonl, out / RUN_RESULT])
    if previous and not (resume or overwrite):
        names = ", ".join(_relative(path, out) for path in previous[:5]) + (", ..." if len(previous) > 5 else "")
        raise ValueError(
            f"--out {out} holds another run ({names}); pass --resume to continue that run, --overwrite to "
            "delete its files and start afresh, or choose a new --out"
        )
    for folder in dict.fromkeys(path.parent for path in (out / RUN_RESULT, checkpoint, log_jsonl) if path):
        check_writable(folder)
    if overwrite:
        _delete_together(previous)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(folder)))


def _delete_together(paths: list[Path]) -> None:
    """Delete the earlier run's ``paths``: all of them or, if any cannot go, none. Each is first renamed
    into a hidden folder beside it (a rename within one folder), and only then are those folders removed."""
    for path in paths:
        if path.is_symlink():
            raise ValueError(f"--overwrite would delete {path}, a symbolic link to {os.path.realpath(path)}; "
                             "--overwrite deletes only what the earlier run wrote, so move the link away first")
    trash: dict[Path, Path] = {}
    moved: list[tuple[Path, Path]] = []
    try:
        for index, path in enumerate(paths):
            if path.parent not in trash:
                trash[path.parent] = Path(tempfile.mkdtemp(prefix=".sae-fast-overwritten-", dir=path.parent))
            aside = trash[path.parent] / f"{index}-{path.name}"
            os.rename(path, aside)
            moved.append((path, aside))
    except OSError:
        for path, aside in reversed(moved):
            os.rename(aside, path)
        for folder in trash.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for folder in trash.values():
        shutil.rmtree(folder)


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and write and delete a probe file in it: an OSError names the path.

    ``os.access`` is not enough: it ignores read-only mounts under some set-ups and is always true for root.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".sae-fast-write-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def os_error_message(error: OSError) -> str:
    """One line that names the path the OS refused and what to do about it."""
    path = error.filename if error.filename is not None else "(unknown path)"
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {path}: {reason}; choose an output folder you may write to (--out), or fix "
                "its permissions")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: {reason}; free some disk space or choose an output folder on another disk"
    return f"{reason}: {path}; check that the path is right and that its parent folders are folders you may write"


def _relative(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return text + ("/" if path.is_dir() else "")
