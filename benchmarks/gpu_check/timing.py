"""Device-aware timing for the check's measurements (peak memory: benchmarks' ``peak_step_memory_bytes``).

CUDA work is asynchronous: each repetition is bracketed by CUDA events and the median is read after
one synchronisation. On CPU (the dry run) a host clock is used. Warm-up repetitions run first so
that Triton compilation, cuBLAS handle creation and Adam's state allocation stay out of the numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], device: str, warmup: int, reps: int) -> float:
    """Median wall time of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device == "cuda":
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, end in pairs:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return statistics.median(start.elapsed_time(end) / 1e3 for start, end in pairs)
    times = []
    for _ in range(reps):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def free_device_memory(device: str) -> None:
    """Give cached blocks back between cases, so one case's buffers do not count against the next."""
    if device == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def tf32_products(enabled: bool) -> Iterator[None]:
    """fp32 products in TF32 (torch's and the Triton encoder's, which reads the same flag) or IEEE fp32."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
