"""``CheckConfig``: the sizes, time budget and output folder of one GPU check, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "local" / "gpu_check"


@dataclass(frozen=True)
class CheckConfig:
    """What one run measures. ``paper()`` is the GPU run at the paper's sizes; ``dry()`` the CPU rehearsal."""

    dry: bool
    device: str
    budget_s: float
    """Wall-clock seconds for the whole run; every stage checks what is left before it starts."""
    out_dir: Path
    n_tokens: int
    d_in: int
    ks: tuple[int, ...]
    latent_counts: tuple[int, ...]
    """The dictionary sizes m of the grid, smallest first; the last is the peak-memory size."""
    target_case: tuple[int, int]
    """``(m, k)`` of the full-step target (the issue's m = 24576, k = 32)."""
    matryoshka_m: int
    max_cosine_shape: tuple[int, int, int]
    """``(m1 queries, m0 keys, d)``."""
    dead_fraction: float = 0.2
    """Latents kept dead in every step so the aux loss runs, as in training (benchmarks' DEAD_FRACTION)."""
    aux_k: int = 512
    tf32: bool = True
    """Allow TF32 in fp32 products (torch and the Triton encoder follow ``torch.backends.cuda.matmul.allow_tf32``);
    both the sparse and the dense path get the same setting, and the floor uses the TF32 rate."""
    warmup: int = 2
    reps: int = 10

    @staticmethod
    def paper(out_dir: Path, budget_s: float, tf32: bool) -> CheckConfig:
        return CheckConfig(
            dry=False, device="cuda", budget_s=budget_s, out_dir=out_dir, n_tokens=4096, d_in=768,
            ks=(16, 32, 64), latent_counts=(3072, 6144, 12288, 24576, 49152, 98304), target_case=(24576, 32),
            matryoshka_m=24576, max_cosine_shape=(98304, 49152, 768), tf32=tf32,
        )  # fmt: skip

    @staticmethod
    def dry_run(out_dir: Path, budget_s: float) -> CheckConfig:
        # Tiny: the interpreter runs every Triton program in Python (a per-row select of 8 rows takes
        # seconds), and one repetition is enough to run every line. aux_k stays below the dead count.
        return CheckConfig(
            dry=True, device="cpu", budget_s=budget_s, out_dir=out_dir, n_tokens=8, d_in=16,
            ks=(2,), latent_counts=(32, 64), target_case=(64, 2), matryoshka_m=64,
            max_cosine_shape=(96, 64, 16), aux_k=4, tf32=False, warmup=0, reps=1,
        )  # fmt: skip

    @staticmethod
    def from_env() -> CheckConfig:
        """``GPU_CHECK_DRY=1`` for the CPU rehearsal; ``GPU_CHECK_BUDGET_S`` (default 480 s, 8 minutes);
        ``OUT`` (else benchmarks/results/local/gpu_check/); ``GPU_CHECK_TF32=0`` for IEEE fp32 products."""
        dry = os.environ.get("GPU_CHECK_DRY", "0") == "1"
        raw_budget = os.environ.get("GPU_CHECK_BUDGET_S", "480")
        try:
            budget_s = float(raw_budget)
        except ValueError:
            raise SystemExit(f"GPU_CHECK_BUDGET_S must be seconds, e.g. 480; got {raw_budget!r}") from None
        if budget_s <= 0:
            raise SystemExit(f"GPU_CHECK_BUDGET_S must be positive, e.g. 480; got {raw_budget!r}")
        out_dir = Path(os.environ.get("OUT") or DEFAULT_OUT)
        if dry:
            return CheckConfig.dry_run(out_dir, budget_s)
        return CheckConfig.paper(out_dir, budget_s, tf32=os.environ.get("GPU_CHECK_TF32", "1") != "0")
