"""``make reproduce``: the paper's analyses on the offline default model, end to end, resumable.

1. extract a cache with a held-out split (``family.extract_cache``);
2. train the SAE family (BatchTopK of three sizes, two seeds of the two smaller, TopK and JumpReLU)
   with the paper's recipe in one pass, snapshotting every SAE at each step milestone (``family``);
3. the convergence study: every stitching statistic at every snapshot (``analyses.convergence_point``);
4. at the last snapshot, every analysis: stitching (Figs. 4, 5, 10, 11, 14, 16, 18, 19), section 6
   (Figs. 7-9) and a meta-SAE (Figs. 6, 23);
5. ``claims.json`` (paper, measured, holds per claim) and ``report.md`` with the PNGs.

``python -m sae_fast.reproduce --help`` lists the flags (one per :class:`ReproduceConfig` field).
"""

from sae_fast.reproduce.config import ReproduceConfig, SAESpec
from sae_fast.reproduce.pipeline import run_reproduction

__all__ = ["ReproduceConfig", "SAESpec", "run_reproduction"]
