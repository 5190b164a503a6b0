"""Whether Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET``).

Read from the environment rather than from Triton, so that dispatch can ask before anything has
imported Triton (importing it is slow, and a kernel module imported too early would freeze
compiled-vs-interpreted before a test or script has set the variable; see
:mod:`sae_fast.kernels.triton_backend`).
"""

from __future__ import annotations

import os

_TRUE_SPELLINGS = ("1", "true", "on", "yes", "y")
"""The values Triton itself reads as true for ``TRITON_INTERPRET`` (case-insensitive)."""


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET`` asks Triton to run kernels on the CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "").lower() in _TRUE_SPELLINGS
