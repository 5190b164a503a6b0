"""The expected duration of a long loop, said once when it starts, from the rate of its first unit of work.

A constant measured on one machine would be wrong on the next; a few units of this run on this
machine are the honest estimate. Callers time units after the first (which carries warm-up: kernel
compilation, memory first touched).
"""

from __future__ import annotations

import sys


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def announce_duration(what: str, *, measured: int, elapsed_s: float, remaining: int, unit: str) -> None:
    """Print (to stderr) about how long the ``remaining`` units take, ``measured`` units having taken ``elapsed_s``."""
    if measured <= 0 or remaining <= 0 or elapsed_s <= 0:
        return
    rate = measured / elapsed_s
    print(f"{what}: {remaining:,} {unit} left, expected about {format_duration(remaining / rate)} "
          f"(at the {rate:,.2f} {unit}/s of {measured:,} {unit} just measured)", file=sys.stderr, flush=True)
