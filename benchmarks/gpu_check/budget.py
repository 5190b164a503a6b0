"""The run's one time budget: every stage, and every case inside a grid, asks it before starting."""

from __future__ import annotations

import time


class Skipped(Exception):
    """Work that does not run, with the reason: the budget cannot cover it, or a stage it reads did not finish."""


class Budget:
    """``budget_s`` wall-clock seconds from construction; ``reserve_s`` of them are kept for writing results."""

    def __init__(self, budget_s: float, reserve_s: float = 5.0) -> None:
        self.budget_s = budget_s
        self._deadline = time.monotonic() + budget_s - reserve_s

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def require(self, seconds: float, what: str) -> None:
        """Go on only if ``seconds`` are left for ``what``; otherwise say so (the stage records it as skipped)."""
        left = self.remaining()
        if left < seconds:
            raise Skipped(f"{what}: needs about {seconds:.0f} s, {max(left, 0):.0f} s of the budget left")
