"""Resumable extraction of activations into an on-disk cache (layout in ``cache_format``).

``extract_activations(model, texts, directory, config)`` runs the model over ``config.max_tokens``
activation rows (rounded up to whole sequences), writing them in chunks of ``config.model_batch_size``
sequences. After each chunk the data is flushed and the manifest's ``count`` is advanced atomically, so
an interrupted run loses at most one chunk. Running the same call again continues from ``count``: it
re-tokenizes the text, checks that the sequences already stored are exactly the ones the text yields
(refusing to mix two corpora), and extracts the rest. A finished cache is returned as is.

Activations are checked for NaN/Inf before they are stored (after the cast, so float16 overflow is
caught too); the error names the offending rows and their sequence/position.

The data files are preallocated (``os.posix_fallocate``) before anything is written: a disk too small
fails right away with an OSError saying how much space is needed, instead of a SIGBUS from a
memory-mapped write into a hole of a sparse file. Files created by a failed start are removed, and a
cache is only marked ``complete`` once every row is flushed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_fast.activations.cache_format import (
    ACTIVATIONS,
    FORMAT_NAME,
    FORMAT_VERSION,
    IDENTITY_FIELDS,
    MANIFEST,
    NORM_DTYPE,
    NORMS,
    TOKEN_DTYPE,
    TOKENS,
    check_files,
    content_fingerprint,
    expected_file_sizes,
    heldout_count,
    manifest_field,
    read_manifest,
    row_norms,
    write_manifest,
)
from sae_fast.activations.cache_reader import ActivationCacheReader
from sae_fast.activations.config import ActivationConfig
from sae_fast.activations.hooks import check_hook_name
from sae_fast.activations.models import check_fits_context, model_d_model, model_label, model_source
from sae_fast.activations.sequences import batched
from sae_fast.activations.stream import activation_rows, config_sequences
from sae_fast.duration import announce_duration
from sae_fast.io.folder_lock import LOCK_FILE


def _source_fingerprint(texts: Iterable[str]) -> str:
    fingerprint = getattr(texts, "fingerprint", None)
    if not isinstance(fingerprint, str):
        raise TypeError(
            "texts must be a TextSource with a .fingerprint (TextList, LocalTextFiles, HFStreamingTexts, "
            "OfflineProse) so the cache can record and check which text it holds"
        )
    return fingerprint


def _new_manifest(model: Any, texts: Iterable[str], config: ActivationConfig, tokenizer: Any) -> dict[str, Any]:
    if config.max_tokens is None:
        raise ValueError("an activation cache needs config.max_tokens (its files are sized up front)")
    rows_per_sequence = config.rows_per_sequence
    capacity_sequences = -(-config.max_tokens // rows_per_sequence)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": model_label(model),
        "model_source": model_source(model),
        "tokenizer": str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
        "hook_name": config.hook_name,
        "seq_len": config.seq_len,
        "first_position": config.first_position,
        "prepend_bos": config.prepend_bos,
        "dtype": config.cache_dtype,
        "d_model": model_d_model(model),
        "rows_per_sequence": rows_per_sequence,
        "requested_sequences": capacity_sequences,
        "capacity_sequences": capacity_sequences,
        "heldout_fraction": float(config.heldout_fraction),
        "heldout_sequences": heldout_count(config.heldout_fraction, capacity_sequences),
        "autocast": config.autocast,
        "row_norms": True,
        "text_source": _source_fingerprint(texts),
        "sequences": 0,
        "count": 0,
        "complete": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _check_resumable(directory: Path, existing: dict[str, Any], wanted: dict[str, Any]) -> None:
    mismatched = {k: (manifest_field(existing, k), wanted[k]) for k in IDENTITY_FIELDS
                  if manifest_field(existing, k) != wanted[k]}
    if mismatched:
        details = ", ".join(f"{k}: cache has {old!r}, now {new!r}" for k, (old, new) in mismatched.items())
        raise ValueError(
            f"{directory} already holds a different activation cache ({details}); "
            "extract into a new directory or delete this one"
        )
    check_files(directory, existing)


def _explain_os_error(error: OSError, directory: Path, manifest: dict[str, Any]) -> OSError:
    """The same OSError (errno kept) with what it means for the cache and how to get past it."""
    needed = sum(expected_file_sizes(manifest).values())
    if error.errno == errno.ENOSPC:
        advice = (f"no space left on the device for the cache in {directory} (it needs {needed / 2**30:.2f} GiB); "
                  "free space, extract to another disk, lower max_tokens or use cache_dtype='float16'")
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = (f"cannot write the cache in {directory} ({os.strerror(error.errno).lower()}); "
                  "extract into a directory you can write to")
    else:
        advice = f"could not write the cache in {directory}: {error.strerror or error}"
    return OSError(error.errno, advice, error.filename)


def _preallocate(path: Path, size: int) -> None:
    """Create or extend ``path`` to ``size`` bytes backed by disk blocks (not a sparse hole)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # never truncates: a resumed cache keeps its rows
    try:
        if size == 0:
            return
        try:
            os.posix_fallocate(fd, 0, size)
        except AttributeError:  # no posix_fallocate (macOS): sparse, as before
            os.ftruncate(fd, size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(fd, size)  # a filesystem that cannot preallocate: sparse, as before
    finally:
        os.close(fd)


def _allocate_files(directory: Path, manifest: dict[str, Any], *, created: bool) -> None:
    """Preallocate the data files; on failure remove what this call created and explain the error."""
    names = list(expected_file_sizes(manifest).items())
    try:
        if created:
            directory.mkdir(parents=True, exist_ok=True)
        for name, size in names:
            _preallocate(directory / name, size)
    except OSError as error:
        if created:
            for name, _ in names:
                (directory / name).unlink(missing_ok=True)
        raise _explain_os_error(error, directory, manifest) from error


def _remove_cache_files(directory: Path, manifest: dict[str, Any], *, remove_directory: bool) -> None:
    """Delete the files a new extraction created (by name), and the directory it created if now empty."""
    for name in [*expected_file_sizes(manifest), MANIFEST]:
        (directory / name).unlink(missing_ok=True)
    if remove_directory:
        with contextlib.suppress(OSError):
            directory.rmdir()  # only succeeds when empty, so nothing of the user's goes


def _check_finite(rows: torch.Tensor, first_row: int, rows_per_sequence: int, first_position: int) -> None:
    bad = (~torch.isfinite(rows)).any(dim=1).nonzero().flatten()
    if bad.numel():
        global_rows = (bad + first_row).tolist()
        where = [(r // rows_per_sequence, r % rows_per_sequence + first_position) for r in global_rows[:5]]
        raise ValueError(
            f"activations contain NaN/Inf in {len(global_rows)} row(s), first rows {global_rows[:5]} "
            f"(sequence, position) = {where}; with cache_dtype='float16' this is usually overflow: "
            "use cache_dtype='float32' (or drop the offending positions via first_position)"
        )


def extract_activations(
    model: Any,
    texts: Iterable[str],
    directory: str | Path,
    config: ActivationConfig,
    *,
    tokenizer: Any = None,
    progress: bool = True,
) -> ActivationCacheReader:
    """Extract (or finish extracting) ``config.max_tokens`` rows into ``directory``; return a reader.

    ``texts`` must be a ``TextSource`` (it carries the fingerprint stored in the manifest). The rows are
    stored in sequence order; shuffling happens when reading (``ActivationCacheReader.batches``).
    """
    if not isinstance(config, ActivationConfig):
        raise TypeError(f"config must be an ActivationConfig, got {type(config).__name__}")
    check_hook_name(model, config.hook_name)
    check_fits_context(model, config.seq_len)
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("the model has no tokenizer; pass tokenizer=...")
    directory = Path(directory)
    wanted = _new_manifest(model, texts, config, tokenizer)

    created = not (directory / MANIFEST).is_file()
    directory_existed = directory.exists()
    if not created:
        manifest = read_manifest(directory)
        _check_resumable(directory, manifest, wanted)
        if manifest["complete"]:
            return ActivationCacheReader(directory)
        _allocate_files(directory, manifest, created=False)  # fills the holes of an older, sparse cache
    else:
        if directory.exists() and any(p.name != LOCK_FILE for p in directory.iterdir()):
            raise ValueError(f"{directory} exists, is not empty and has no {MANIFEST}; extract into an empty or new directory")
        manifest = wanted
        _allocate_files(directory, manifest, created=True)
        try:
            write_manifest(directory, manifest)
        except OSError as error:
            raise _explain_os_error(error, directory, manifest) from error

    rows_per_sequence = manifest["rows_per_sequence"]
    capacity = manifest["capacity_sequences"]
    try:
        acts = np.memmap(directory / ACTIVATIONS, dtype=manifest["dtype"], mode="r+",
                         shape=(capacity * rows_per_sequence, manifest["d_model"]))
        stored_tokens = np.memmap(directory / TOKENS, dtype=TOKEN_DTYPE, mode="r+", shape=(capacity, manifest["seq_len"]))
        norms = (np.memmap(directory / NORMS, dtype=NORM_DTYPE, mode="r+", shape=(capacity * rows_per_sequence,))
                 if manifest_field(manifest, "row_norms") else None)
    except OSError as error:
        raise _explain_os_error(error, directory, manifest) from error
    torch_dtype = getattr(torch, manifest["dtype"])

    sequences = config_sequences(texts, tokenizer, config)
    done = manifest["sequences"]
    verified = 0
    for tokens in islice(sequences, done):
        if not np.array_equal(tokens.numpy(), stored_tokens[verified]):
            raise ValueError(
                f"cannot resume {directory}: sequence {verified} of the text differs from the stored one, although "
                f"the text source fingerprint matches ({manifest['text_source']}); the text or tokenizer changed. "
                "Extract into a new directory"
            )
        verified += 1
    if verified < done:
        raise ValueError(f"cannot resume {directory}: the text now yields {verified} sequences, fewer than the {done} stored")

    bar = tqdm(total=capacity * rows_per_sequence, initial=done * rows_per_sequence, unit="tok",
               desc=f"extract {config.hook_name}", disable=not progress)
    batches_this_run, timed_from = 0, 0.0
    try:
        for tokens in batched(islice(sequences, capacity - done), config.model_batch_size):
            rows = activation_rows(model, tokens, config.hook_name, config.first_position, config.autocast)
            rows = rows.to(device="cpu", dtype=torch_dtype)
            first_row = done * rows_per_sequence
            _check_finite(rows, first_row, rows_per_sequence, config.first_position)
            acts[first_row : first_row + rows.shape[0]] = rows.numpy()
            stored_tokens[done : done + tokens.shape[0]] = tokens.numpy().astype(TOKEN_DTYPE)
            acts.flush()
            stored_tokens.flush()
            if norms is not None:
                norms[first_row : first_row + rows.shape[0]] = row_norms(rows.numpy())
                norms.flush()
            done += tokens.shape[0]
            manifest = {**manifest, "sequences": done, "count": done * rows_per_sequence}
            write_manifest(directory, manifest)
            bar.update(rows.shape[0])
            # The expected duration, said once: the second forward batch timed (the first carries warm-up).
            batches_this_run += 1
            if batches_this_run == 1:
                timed_from = time.perf_counter()
            elif batches_this_run == 2 and progress:
                announce_duration(f"extract {config.hook_name}", measured=rows.shape[0],
                                  elapsed_s=time.perf_counter() - timed_from,
                                  remaining=(capacity - done) * rows_per_sequence, unit="tokens")
    finally:
        bar.close()
        del acts, stored_tokens, norms

    if done == 0:
        if created:  # a preallocated, empty cache would only block the next run on this directory
            _remove_cache_files(directory, manifest, remove_directory=not directory_existed)
        raise ValueError(
            f"the text source yielded no complete sequence of {config.seq_len} tokens; nothing was written to "
            f"{directory} (give more or longer texts, or a smaller seq_len)"
        )
    if done < capacity:  # the text ran out: shrink the files to what was written
        manifest = {**manifest, "capacity_sequences": done}
        if "heldout_sequences" in manifest:
            manifest["heldout_sequences"] = heldout_count(manifest["heldout_fraction"], done)
        for name, size in expected_file_sizes(manifest).items():
            os.truncate(directory / name, size)
        write_manifest(directory, manifest)
    written = ActivationCacheReader(directory, split="all", check_finite=False, allow_incomplete=True)
    fingerprint = content_fingerprint(written.tokens, written.activations)
    del written
    write_manifest(directory, {**manifest, "complete": True, "fingerprint": fingerprint,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return ActivationCacheReader(directory)
