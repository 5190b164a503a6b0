"""Where commands write: never into another run's folder unless asked, never into a cache or an SAE
folder, and a clear message instead of a traceback when the file system says no.

A training run writes into ``--out``: ``train_result.json``, one SAE folder per ``--sae`` name, and by
default ``checkpoints/checkpoint.pt`` and ``metrics.jsonl``. Starting a second run there would overwrite
the first run's checkpoint, append to its metrics and leave its other SAE folders looking like results
of the new run, so :func:`prepare_run_folder` refuses unless the user says ``--resume`` (same run) or
``--overwrite`` (delete the earlier run's files first).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sae_fast.commands.inputs import folder_kind

RUN_RESULT = "train_result.json"


def refuse_input_folder(out: str | Path, flag: str = "--out") -> None:
    """Raise if ``out`` is an activation cache or a saved SAE: writing there would corrupt an input."""
    kind = folder_kind(out)
    if kind == "cache":
        raise ValueError(f"{flag} {out} is an activation cache (it has manifest.json); give a new folder for "
                         "the results, e.g. runs/<name>")
    if kind == "sae":
        raise ValueError(f"{flag} {out} is a saved SAE folder (it has cfg.json); give a new folder for the "
                         "results, e.g. runs/<name>")


def previous_run_files(out: Path, written: Iterable[Path | None]) -> list[Path]:
    """Files and SAE folders of an earlier run that this run would overwrite, append to, or leave stale."""
    found = [path for path in written if path is not None and path.is_file()]
    if out.is_dir():
        # Every saved SAE directly under --out belongs to a run, whether or not this run reuses its name.
        found += sorted(child for child in out.iterdir() if child.is_dir() and folder_kind(child) == "sae")
    return found


def prepare_run_folder(
    out: str | Path, *, sae_names: Iterable[str], checkpoint: Path | None, log_jsonl: Path | None,
    resume: bool, overwrite: bool,
) -> None:
    """Check ``out`` before any training: an input folder or another run's folder is refused (unless
    ``resume`` or ``overwrite``), and every folder the run writes into must be writable."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it; pass only one")
    refuse_input_folder(out)
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
        for path in previous:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


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
