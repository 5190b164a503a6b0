"""Decoder-direction similarity between two dictionaries: the workflow-level names of the
kernel-layer ops in :mod:`sae_fast.kernels.max_cosine` (see there for conventions and backends)."""

from sae_fast.kernels import max_cosine as _max_cosine
from sae_fast.kernels.max_cosine import *  # noqa: F403  (the names listed in __all__ below)

__all__ = [name for name in _max_cosine.__all__ if name != "BACKENDS"]
