"""The floor of one BatchTopK training step: the work no implementation of it avoids, at the measured ceilings.

- the encoder product ``x @ W_enc``: ``2 n d m`` FLOP at the measured matrix rate (selection needs every
  pre-activation, so the sparse path keeps this one dense product);
- Adam: one fused pass over every parameter that reads the parameter, its gradient and both moments and
  writes the parameter and both moments: ``7 * 4`` bytes per fp32 element at the measured bandwidth.

Everything else (selection, the sparse products, the aux loss) is O(n k d) or O(n m) elementwise work
and is what the measured step spends above this floor.
"""

from __future__ import annotations

ADAM_BYTES_PER_ELEMENT = 7 * 4


def adam_bytes(m: int, d: int) -> int:
    """Bytes one fused Adam step moves over an SAE's ``W_enc``, ``W_dec``, ``b_enc`` and ``b_dec``."""
    return ADAM_BYTES_PER_ELEMENT * (2 * m * d + m + d)


def step_floor_seconds(n: int, m: int, d: int, flop_per_s: float, bytes_per_s: float) -> dict:
    """The floor and its two terms, in seconds."""
    encoder = 2 * n * d * m / flop_per_s
    adam = adam_bytes(m, d) / bytes_per_s
    return {"floor_s": encoder + adam, "encoder_product_s": encoder, "adam_s": adam}
