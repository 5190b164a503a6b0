"""Dataclass configs <-> argparse flags: one ``--field-name`` flag per config field, its help the field's
documentation. ``sae_fast.cli`` and the subcommands in this package build their parsers with it."""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from typing import Any

from sae_fast.config_fields import field_help, plain_text


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """For scripts whose description is their docstring: its layout kept, reST markup shown as plain
    text, every flag's default shown."""

    def format_help(self) -> str:
        return plain_text(super().format_help())


def int_at_least(lower: int, *, optional: bool = False) -> Any:
    """An argparse ``type``: an int ``>= lower`` (``optional``: or None), refused at parse time with the flag
    named. Every int flag of ``sae-fast`` has one, so no count is ever negative (a Python slice of the
    end) or zero where zero means nothing."""
    def parse(text: str) -> int | None:
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lower:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lower}" + (" or none" if optional else "")
                                             + f", got {value}")
        return value

    parse.__name__ = f"int >= {lower}"  # what argparse names in "invalid <type> value"
    return parse


def finite_float(text: str) -> float:
    """A float flag's value; ``inf`` and ``nan`` parse as floats but are never a meaningful setting."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def optional_finite_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else finite_float(text)


def optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "null", "") else text


def _nested_dataclass(hint: Any) -> type | None:
    """The dataclass a field nests (e.g. ``MetaSAEConfig.train``); its fields get flags of their own."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, *, prefix: str = "", skip: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None, title: str | None = None, description: str | None = None,
    help_overrides: dict[str, str] | None = None,
) -> None:
    """One ``--{prefix}{field-name}`` flag per field of ``cls`` (dest ``{prefix}{field_name}``).

    The help is the field's documentation (:func:`~sae_fast.config_fields.field_help`). A field that
    nests a dataclass contributes that dataclass's fields as flags of the same level (in a group of their
    own, described by the nesting field's documentation), with the nested default's values as their
    defaults; ``skip``, ``defaults`` and ``help_overrides`` (a command's own meaning of a field) name
    fields at either level. reST markup in the documentation is shown as plain text.
    """
    hints = typing.get_type_hints(cls)
    helps = {name: plain_text(text) for name, text in field_help(cls).items()}
    group = parser.add_argument_group(title or f"{cls.__name__} (one flag per field)",
                                      None if description is None else plain_text(description))
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        default = (defaults or {}).get(f.name, _field_default(f))
        nested = _nested_dataclass(hint)
        if nested is not None:
            inner = {g.name: getattr(default, g.name) for g in dataclasses.fields(nested)}
            add_dataclass_arguments(parser, nested, prefix=prefix, skip=skip, defaults={**inner, **(defaults or {})},
                                    title=f"{cls.__name__}.{f.name}: a {nested.__name__}", description=helps[f.name],
                                    help_overrides=help_overrides)
            continue
        if f.default is dataclasses.MISSING:
            continue  # dict/factory fields (metadata) have no flag
        flag = "--" + (prefix + f.name).replace("_", "-")
        dest = (prefix + f.name).replace("-", "_")
        text = (help_overrides or {}).get(f.name, helps[f.name]) + f" (default: {default})"
        args = typing.get_args(hint)
        optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if optional else hint
        if base is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(base) is typing.Literal:
            group.add_argument(flag, dest=dest, choices=typing.get_args(base), default=default, help=text)
        elif typing.get_origin(base) is tuple:
            group.add_argument(flag, dest=dest, type=finite_float, nargs=len(typing.get_args(base)), default=default,
                               metavar="X", help=text)
        elif base in (int, float, str):
            plain = {float: finite_float}.get(base, base)
            kind = {float: optional_finite_float, str: optional_str}.get(base, plain) if optional else plain
            if base is int:  # no config count is negative; each config's validate() refuses a zero it cannot use
                kind = int_at_least(0, optional=optional)
            group.add_argument(flag, dest=dest, type=kind, default=default, help=text)


def _flag_values(cls: type, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """``{field: value}`` of the fields of ``cls`` that have a flag in ``args`` (lists made tuples)."""
    values = {}
    for f in dataclasses.fields(cls):
        dest = (prefix + f.name).replace("-", "_")
        if hasattr(args, dest):
            value = getattr(args, dest)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return values


def dataclass_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", **overrides: Any) -> Any:
    """Build ``cls`` from the flags :func:`add_dataclass_arguments` added (plus ``overrides``).

    A nested dataclass is its default with the flags that were added for it applied.
    """
    hints = typing.get_type_hints(cls)
    values = _flag_values(cls, args, prefix)
    for f in dataclasses.fields(cls):
        nested = _nested_dataclass(hints[f.name])
        if nested is not None and f.name not in overrides:
            default, found = _field_default(f), _flag_values(nested, args, prefix)
            fresh = default is dataclasses.MISSING
            values[f.name] = nested(**found) if fresh else dataclasses.replace(default, **found)
    values.update(overrides)
    return cls(**values)
