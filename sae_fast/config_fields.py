"""Config fields that carry their own documentation, the one style every workflow's dataclass uses.

``lr: float = documented(3e-4, "Adam learning rate")`` stores the text in the field's metadata, so
``--help`` (:mod:`sae_fast.cli`) and readers of the dataclass find it with :func:`field_help`, without
parsing source code.
"""

from __future__ import annotations

import dataclasses
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
