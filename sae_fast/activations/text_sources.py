"""Where the text comes from: in-memory lists, local ``.txt`` / ``.jsonl`` files, HF ``datasets`` streaming.

Every source is an iterable of document strings with a ``fingerprint``: a short string that names the
source (kind, location, settings) so an activation cache can refuse to resume from different text.
Iteration is deterministic: the same source yields the same documents in the same order.

``text_source_from_spec`` turns a CLI string into a source:

- ``"offline-prose"``: English prose from installed docs (see :mod:`sae_fast.activations.prose_corpus`);
- ``"openwebtext"``: ``hf:Skylion007/openwebtext`` (online only);
- ``"hf:PATH[:SPLIT[:FIELD]]"``: any HF dataset, streamed (online only);
- anything else: a path to a ``.txt`` / ``.jsonl`` file or a directory of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from sae_fast.validation import import_optional
from sae_fast.io.reading import parse_json_text

OPENWEBTEXT = "Skylion007/openwebtext"


@runtime_checkable
class TextSource(Protocol):
    """An iterable of documents with a ``fingerprint`` naming what was read."""

    @property
    def fingerprint(self) -> str: ...

    def __iter__(self) -> Iterator[str]: ...


class TextList:
    """Documents held in memory (tests, small experiments)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = list(texts)
        bad = [i for i, t in enumerate(self.texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts must be strings; items {bad[:5]} are not")

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(hashlib.sha256(text.encode()).digest())
        return f"list:{len(self.texts)}:{digest.hexdigest()[:16]}"

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)


class LocalTextFiles:
    """``.txt`` files (one document each) and ``.jsonl`` files (one document per line, in ``text_field``).

    Directories are searched recursively for ``.txt`` / ``.jsonl``; files are read in sorted path order.
    """

    SUFFIXES = (".txt", ".jsonl")

    def __init__(self, paths: str | Path | Sequence[str | Path], text_field: str = "text") -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.suffix in self.SUFFIXES and p.is_file()))
            elif path.is_file():
                if path.suffix not in self.SUFFIXES:
                    raise ValueError(f"{path}: unsupported file type; use .txt (one document) or .jsonl (one per line)")
                files.append(path)
            else:
                raise FileNotFoundError(f"text file or directory {path} does not exist")
        if not files:
            raise ValueError(f"no .txt or .jsonl files found in {[str(p) for p in paths]}")
        self.files = files
        self.text_field = text_field

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return f"files:{len(self.files)}:{self.text_field}:{digest.hexdigest()[:16]}"

    def __iter__(self) -> Iterator[str]:
        for path in self.files:
            if path.suffix == ".txt":
                yield path.read_text(encoding="utf-8", errors="replace")
                continue
            # Read as bytes and decode line by line, so a bad byte is reported with its file and line.
            with open(path, "rb") as handle:
                for line_number, raw in enumerate(handle, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as error:
                        raise ValueError(
                            f"{path}:{line_number}: not UTF-8 text (byte {error.start} of the line: {error.reason}); "
                            "re-encode the file as UTF-8"
                        ) from None
                    if not line.strip():
                        continue
                    record = parse_json_text(line, f"{path}:{line_number}")
                    if not isinstance(record, dict) or not isinstance(record.get(self.text_field), str):
                        raise ValueError(f"{path}:{line_number}: expected an object with a string field {self.text_field!r}")
                    yield record[self.text_field]


class HFStreamingTexts:
    """A Hugging Face dataset read with ``datasets.load_dataset(..., streaming=True)`` (needs network)."""

    def __init__(self, path: str = OPENWEBTEXT, split: str = "train", text_field: str = "text", name: str | None = None) -> None:
        if not path:
            raise ValueError("dataset path is empty; e.g. 'Skylion007/openwebtext'")
        self.path, self.split, self.text_field, self.name = path, split, text_field, name

    @property
    def fingerprint(self) -> str:
        return f"hf:{self.path}:{self.name or ''}:{self.split}:{self.text_field}"

    def __iter__(self) -> Iterator[str]:
        datasets = import_optional("datasets", "lm", "reading a Hugging Face dataset")

        dataset = datasets.load_dataset(self.path, self.name, split=self.split, streaming=True)
        for record in dataset:
            text = record.get(self.text_field)
            if not isinstance(text, str):
                raise ValueError(f"dataset {self.path} has no string field {self.text_field!r}; fields: {sorted(record)}")
            yield text


def text_source_from_spec(spec: str, seed: int = 0) -> TextSource:
    """Parse a CLI text-source string (see the module docstring).

    ``seed`` chooses the document order of sources that have one to choose (offline-prose, which then
    has a ``seed`` attribute); files and HF datasets are always read in their own order.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError("text source spec must be a non-empty string, e.g. 'offline-prose' or a path")
    if spec == "offline-prose":
        from sae_fast.activations.prose_corpus import OfflineProse

        return OfflineProse(seed=seed)
    if spec == "openwebtext":
        return HFStreamingTexts(OPENWEBTEXT)
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"bad HF spec {spec!r}; use hf:PATH[:SPLIT[:FIELD]]")
        return HFStreamingTexts(*parts)
    return LocalTextFiles(spec)
