"""OpenMP's wait policy: make sleeping, not spinning, the default before any OpenMP runtime starts.

Why: GNU libgomp (torch's OpenMP runtime on Linux) lets an idle worker spin for about 3 ms after
every parallel region unless ``OMP_WAIT_POLICY`` says otherwise. A training step runs dozens of
regions (torch's and the C++ ops'), so the workers never sleep; on a machine where anything else
runs they take CPU from the thread doing the work. The README's "Using the modules" snippet (d_in 64,
d_sae 512, 1024 tokens) measured 5-20x slower per step with the spinning default than with
``OMP_WAIT_POLICY=PASSIVE`` on a loaded 2-core machine, in the same run; with one thread, or with
the C++ ops on one thread, the gap vanished, so the spin is the whole cost.

The runtime reads the variable once, when it is loaded, and has no call to change it later. So
this module must run before torch is imported: ``sae_fast/__init__.py`` imports it first, which
covers the CLI, ``python -m sae_fast.demo`` and every script that imports sae_fast before torch.
A user's own setting (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) always wins. When a runtime was
already loaded with the spinning default, nothing can be changed any more;
:func:`warn_if_spinning` says so once, the first time the CPU ops run with more than one thread.
"""

from __future__ import annotations

import os
import sys
import warnings

_USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_RUNTIME_NAMES = ("libgomp", "libomp", "libiomp")


def _openmp_runtime_loaded() -> bool:
    """Whether an OpenMP runtime is already mapped into this process (it has then read its settings)."""
    try:
        with open("/proc/self/maps") as maps:
            return any(name in line for line in maps for name in _RUNTIME_NAMES)
    except OSError:  # not Linux: torch is what loads the runtime
        return "torch" in sys.modules


def _decide() -> bool:
    """Set the passive default when that can still take effect; return whether the spin is on."""
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if _openmp_runtime_loaded():
        return True
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return False


SPINNING: bool = _decide()
"""True when an OpenMP runtime was loaded before sae_fast with no wait policy set (it spins)."""

_warned = False


def warn_if_spinning(threads: int) -> None:
    """Warn once that idle OpenMP threads spin, when they do and more than one thread is in use."""
    global _warned
    if _warned or not SPINNING or threads <= 1:
        return
    _warned = True
    warnings.warn(
        "OpenMP was started (by torch) before sae_fast was imported, with no OMP_WAIT_POLICY: its idle "
        "threads spin after every parallel region, which can make CPU training several times slower "
        "on a busy machine. Import sae_fast before torch, or set OMP_WAIT_POLICY=PASSIVE in the "
        "environment (export OMP_WAIT_POLICY=PASSIVE; or os.environ before `import torch`).",
        RuntimeWarning,
        stacklevel=3,
    )
