"""An offline English prose corpus assembled from what is installed, for demos without network.

Sources, all read as text and never imported:

- docstrings of Python modules in the standard library and site-packages, extracted with ``ast``
  (module, class and function docstrings), keeping only prose-like paragraphs (no doctest lines, no
  parameter tables or underlines, mostly letters);
- if the Debian package ``python3-doc`` is installed, the reST sources of the Python documentation
  (``/usr/share/doc/python3*/html/_sources``), with markup lines dropped and roles unwrapped.

One document per file, files in a seeded random order (so the first documents are not all from one
package). This text is more technical than web text; it is meant for offline demos, not for SAEs
whose features should match published ones (use OpenWebText for that).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import random
import re
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

_MAX_FILE_BYTES = 2_000_000  # generated tables / vendored blobs, not prose
_ROLE = re.compile(r":[a-zA-Z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]*)``")
_PARAMETER_ENTRY = re.compile(r"^\s*\*{0,2}\w+\s*(\(|:\s)")  # "name (type): ..." / "name : type" entries


def _is_prose(paragraph: str) -> bool:
    lines = paragraph.splitlines()
    if any(line.lstrip().startswith((">>>", "...", ":", "..", "$ ", "#")) for line in lines):
        return False
    if any(set(line.strip()) <= set("-=~^*+#_") for line in lines):  # reST underlines / table rules
        return False
    if _PARAMETER_ENTRY.match(lines[0]):
        return False
    text = " ".join(line.strip() for line in lines)
    if len(text) < 60 or "." not in text:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in text)
    return letters / len(text) >= 0.85


def prose_paragraphs(text: str) -> list[str]:
    """Prose-like paragraphs of ``text`` (blank-line separated), each unwrapped onto one line."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return [" ".join(line.strip() for line in p.splitlines()) for p in paragraphs if _is_prose(p)]


def python_docstrings(source: str) -> list[str]:
    """Module, class and function docstrings of Python ``source``, in source order ([] if unparsable)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    nodes = [tree] + [
        node for node in ast.walk(tree) if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    nodes.sort(key=lambda node: getattr(node, "lineno", 0))
    docs = (ast.get_docstring(node, clean=True) for node in nodes)
    return [doc for doc in docs if doc]


def default_python_roots() -> list[Path]:
    """The standard library and the active environment's site-packages."""
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("stdlib", "purelib", "platlib") if key in paths}
    return sorted(root for root in roots if root.is_dir())


def default_rst_roots() -> list[Path]:
    """Debian ``python3-doc`` reST sources, if installed."""
    return sorted(Path(p) for p in glob.glob("/usr/share/doc/python3*/html/_sources") if Path(p).is_dir())


class OfflineProse:
    """Prose documents from installed Python docstrings and, if present, the Python reST docs.

    Args:
        python_roots: directories searched for ``*.py`` (default: stdlib + site-packages).
        rst_roots: directories searched for ``*.rst`` / ``*.rst.txt`` / ``*.txt`` (default: python3-doc).
        seed: order of the files.
        min_chars: documents shorter than this after filtering are skipped.
    """

    def __init__(
        self,
        python_roots: Sequence[str | Path] | None = None,
        rst_roots: Sequence[str | Path] | None = None,
        seed: int = 0,
        min_chars: int = 300,
    ) -> None:
        self.python_roots = [Path(p) for p in (default_python_roots() if python_roots is None else python_roots)]
        self.rst_roots = [Path(p) for p in (default_rst_roots() if rst_roots is None else rst_roots)]
        self.seed = int(seed)
        self.min_chars = int(min_chars)
        self._files: list[Path] | None = None

    def files(self) -> list[Path]:
        """Every candidate file, in the seeded order documents are produced."""
        if self._files is None:
            found: set[Path] = set()
            for root in self.python_roots:
                found.update(p for p in root.rglob("*.py") if p.is_file())
            for root in self.rst_roots:
                found.update(p for p in root.rglob("*") if p.suffix in (".rst", ".txt") and p.is_file())
            files = sorted(found)
            random.Random(self.seed).shuffle(files)
            self._files = files
            if not files:
                raise ValueError(
                    f"no .py or reST files under {[str(p) for p in self.python_roots + self.rst_roots]}; "
                    "the offline prose corpus needs an installed Python library or python3-doc"
                )
        return self._files

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(f"{path}|{path.stat().st_size}\n".encode())
        return f"offline-prose:seed={self.seed}:min={self.min_chars}:{len(self.files())}:{digest.hexdigest()[:16]}"

    def document(self, path: Path) -> str | None:
        """The filtered prose of one file, or None if it has too little."""
        if path.stat().st_size > _MAX_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks = python_docstrings(text) if path.suffix == ".py" else [text]
        paragraphs = [p for chunk in chunks for p in prose_paragraphs(chunk)]
        document = "\n\n".join(paragraphs)
        return document if len(document) >= self.min_chars else None

    def __iter__(self) -> Iterator[str]:
        for path in self.files():
            document = self.document(path)
            if document is not None:
                yield document
