"""One target line of the report: what was checked, the goal, what was measured, and whether it was met.

Speed targets are not judged in the dry run (``met`` is None, shown as "n/a"): tiny sizes on a CPU
interpreter say nothing about GPU speed. Correctness targets are judged in both.
"""

from __future__ import annotations


def target(what: str, goal: str, measured: object, met: bool | None) -> dict:
    return {"what": what, "target": goal, "measured": measured, "met": None if met is None else bool(met)}


def speed_target(dry: bool, what: str, goal: str, measured: object, met: bool) -> dict:
    return target(what, goal, measured, None if dry else met)
