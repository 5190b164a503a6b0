"""Config fields that carry their own documentation, the one style every workflow's dataclass uses.

``lr: float = documented(3e-4, "Adam learning rate")`` stores the text in the field's metadata, so
``--help`` (:mod:`sae_fast.cli`) and readers of the dataclass find it with :func:`field_help`, without
parsing source code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

HELP_KEY = "help"


def documented(default: Any = dataclasses.MISSING, help: str = "", *,
               factory: Callable[[], Any] | Any = dataclasses.MISSING) -> Any:
    """A dataclass field with documentation ``help`` (whitespace collapsed); ``factory`` for mutable defaults."""
    if default is not dataclasses.MISSING and factory is not dataclasses.MISSING:
        raise TypeError("documented() takes a default or a factory, not both")
    return dataclasses.field(default=default, default_factory=factory, metadata={HELP_KEY: " ".join(help.split())})


def field_help(cls: type) -> dict[str, str]:
    """``{field name: documentation}`` of a dataclass (an empty string for an undocumented field)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"field_help needs a dataclass, got {cls!r}")
    return {f.name: f.metadata.get(HELP_KEY, "") for f in dataclasses.fields(cls)}


def with_fields(cls: type, config: Any, fields: dict[str, Any], *, kind: str = "") -> Any:
    """``config`` (``cls()`` when None) with the ``fields`` it names replaced, validated by ``cls`` again.

    Lets an entry point take one config object plus a few fields as keywords. An unknown name raises
    TypeError listing the fields (``kind``, e.g. "stitching", names whose keywords they were).
    """
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        label = f"{kind} keyword(s)" if kind else "keyword(s)"
        raise TypeError(f"unknown {label} {unknown}; the {cls.__name__} fields are {sorted(known)}")
    base = cls() if config is None else config
    return dataclasses.replace(base, **fields) if fields else base


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :func:`~a.b.c` and friends
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str) -> str:
    """``text`` with reST markup a terminal shows raw (``code``, :func:`~a.b`) turned into plain words.

    ``--help`` texts come from docstrings and field documentation written in reST.
    """
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return _LITERAL.sub(r"\1", text)
