"""Device helpers shared by the Triton kernels: the tensor check and the radix-select digits.

Radix select works on sort keys: a strictly positive float32's bit pattern, read as an int32, is
monotone in its value, so the k-th largest value is found digit by digit (most significant
first) from histograms of the keys whose higher digits match the prefix found so far. Everything
that is not strictly positive gets key 0, which can never be kept (NaN therefore counts as an
inactive latent).

Kernels take the digit width as a ``DIGIT_BITS`` constexpr argument (Triton kernels cannot read
plain module globals), and launchers pass :data:`DIGIT_BITS`.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from sae_fast.kernels.triton_interpreter import interpreting

KEY_BITS = 32
"""Width of a sort key (an int32; its sign bit is always 0)."""
DIGIT_BITS = 8
NUM_BINS = 1 << DIGIT_BITS
RADIX_SHIFTS = tuple(range(KEY_BITS - DIGIT_BITS, -1, -DIGIT_BITS))
"""Shift of each digit, most significant first: (24, 16, 8, 0)."""


def check_kernel_tensor(name: str, t: Tensor) -> None:
    """Reject tensors a Triton kernel cannot read: CPU tensors need the interpreter."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"{name} is on {t.device}; the Triton kernels need CUDA tensors "
            "(or TRITON_INTERPRET=1 set before importing them, to test on CPU)"
        )


@triton.jit
def positive_key(v):
    """float32 -> int32 sort key: monotone for v > 0, and 0 for everything else (never kept)."""
    return tl.where(v > 0, v.to(tl.int32, bitcast=True), 0)


@triton.jit
def digit_histogram(key, valid, prefix, SHIFT: tl.constexpr, DIGIT_BITS: tl.constexpr):
    """Histogram of the digit at ``SHIFT`` over valid keys whose higher digits equal ``prefix``'s."""
    match = valid
    if SHIFT + DIGIT_BITS < 32:  # the top digit has no higher digits to match (keys are int32)
        match = match & ((key >> (SHIFT + DIGIT_BITS)) == (prefix >> (SHIFT + DIGIT_BITS)))
    return tl.histogram((key >> SHIFT) & ((1 << DIGIT_BITS) - 1), 1 << DIGIT_BITS, mask=match)


@triton.jit
def refine_prefix(hist, prefix, rank, SHIFT: tl.constexpr, DIGIT_BITS: tl.constexpr):
    """Fix the digit at ``SHIFT`` of the ``rank``-th largest (1-based) matched key.

    ``hist`` counts the matched keys by that digit. Returns the extended prefix and the rank of
    the target among the keys that also match the new digit.
    """
    hist = hist.to(tl.int64)
    bins = tl.arange(0, 1 << DIGIT_BITS)
    at_or_below = tl.cumsum(hist, 0)
    total = tl.sum(hist, 0)
    at_or_above = total - at_or_below + hist
    digit = tl.sum((at_or_above >= rank).to(tl.int32), 0) - 1
    above = total - tl.sum(tl.where(bins == digit, at_or_below, 0), 0)
    return prefix | (digit << SHIFT), rank - above
