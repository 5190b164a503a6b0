"""Stage ``matryoshka``: one Matryoshka BatchTopK step against the dense peer and against BatchTopK.

The benchmarks' Matryoshka case (``test_bench_matryoshka``): nested widths m/8, m/4, m/2, m; the
dense peer decodes each prefix densely; sae_fast runs one nested sparse decode. The BatchTopK row of
the same size shows what the nested losses cost.
"""

from __future__ import annotations

from test_bench_matryoshka import nested_widths

from gpu_check.config import CheckConfig
from gpu_check.grid import run_cases, speedups
from gpu_check.stage_training_step import make_sae, time_step
from sae_fast import BatchTopKSAE, MatryoshkaBatchTopKSAE

NEEDS_S = 10.0


def run(cfg: CheckConfig, context: dict) -> dict:
    def measure(m: int, k: int) -> list[dict]:
        widths = nested_widths(m)
        impls = (
            ("dense_peer", "dense_peer", MatryoshkaBatchTopKSAE, {"matryoshka_widths": widths}),
            ("sae_fast_matryoshka", "sae_fast", MatryoshkaBatchTopKSAE, {"matryoshka_widths": widths}),
            ("sae_fast_batchtopk", "sae_fast", BatchTopKSAE, {}),
        )
        return [{"m": m, "k": k, "impl": label, "widths": widths,
                 **time_step(cfg, step, make_sae(cfg, m, k, cls, **kwargs), with_memory=False)}
                for label, step, cls, kwargs in impls]  # fmt: skip

    outcome = run_cases(cfg, context["budget"], [(cfg.matryoshka_m, cfg.target_case[1])], measure)
    speedups(outcome["rows"], "dense_peer")
    return outcome
