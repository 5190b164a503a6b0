"""Reconstruction error of a stitched SAE, updated as latents enter or leave (rank-1 updates).

With ``e_t = x_t - b_dec1 - sum_{L0} f0 W0 - sum_{L1} f1 W1`` (the residual without the mixed part
of the bias) and ``delta = b_dec0 - b_dec1``, the stitched residual is ``r_t = e_t - a delta``, so

    sum_t |r_t|^2 = sum_t |e_t|^2 - 2 a <sum_t e_t, delta> + n a^2 |delta|^2.

Adding or removing a latent changes ``e_t`` only on the tokens where it fires (a rank-1 update of
those rows), ``a`` only through two counts, and the L0 by the latent's firing count. So a step
costs O(entries of the changed latents * d_in) and the whole interpolation path costs about one
decode of each SAE, instead of a full re-evaluation per step. State is kept in float64 so that
thousands of updates agree with a from-scratch evaluation to ~1e-10.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor

from sae_fast.stitching.encoded import EncodedEvalSet, LatentColumns


@contextmanager
def single_threaded():
    """Run torch ops on one thread for the duration (restored afterwards).

    A step touches ~(tokens a latent fires on) x d_in numbers, far too little to amortise
    intra-op thread synchronisation; on a busy 2-core machine we measured an 86-row ``index_add_``
    at 0.02 ms on one thread and ~100 ms with two threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class IncrementalStitchedError:
    """MSE and L0 of the stitched SAE over a fixed evaluation set, maintained under latent swaps.

    Starts from ``L0 = all small latents``, ``L1 = {}`` (the small SAE).
    """

    def __init__(self, encoded: EncodedEvalSet, W_dec_small: Tensor, b_dec_small: Tensor,
                 W_dec_large: Tensor, b_dec_large: Tensor) -> None:
        f64 = torch.float64
        self.n, self.d = encoded.x.shape
        self.W = (W_dec_small.detach().to(f64), W_dec_large.detach().to(f64))
        self.columns = (LatentColumns.from_codes(encoded.small_codes), LatentColumns.from_codes(encoded.large_codes))
        self.counts = tuple(c.counts() for c in self.columns)
        b0, b1 = b_dec_small.detach().to(f64), b_dec_large.detach().to(f64)
        self.delta = b0 - b1
        self.delta_sq = float(self.delta @ self.delta)
        small_recon = torch.zeros(self.n, self.d, dtype=f64, device=encoded.x.device)
        c = encoded.small_codes
        small_recon.index_add_(0, c.token_indices(), c.values.to(f64)[:, None] * self.W[0][c.latent_indices])
        self.e = encoded.x.to(f64) - b1 - small_recon
        self.row_sq = self.e.pow(2).sum(dim=1)
        self.e_sum = self.e.sum(dim=0)
        self.included = (
            torch.ones(self.W[0].shape[0], dtype=torch.bool, device=self.e.device),
            torch.zeros(self.W[1].shape[0], dtype=torch.bool, device=self.e.device),
        )
        self.n_latents = [self.W[0].shape[0], 0]
        self.active_entries = [int(self.counts[0].sum()), 0]

    @property
    def alpha(self) -> float:
        return self.n_latents[0] / (self.n_latents[0] + self.n_latents[1])

    @property
    def n_features(self) -> int:
        return self.n_latents[0] + self.n_latents[1]

    def mse(self) -> float:
        """Mean over tokens and dimensions of the squared error (the SAEs' ``mse``)."""
        a = self.alpha
        total = float(self.row_sq.sum()) - 2 * a * float(self.e_sum @ self.delta) + self.n * a * a * self.delta_sq
        return total / (self.n * self.d)

    def l0(self) -> float:
        """Mean number of active stitched latents per token."""
        return (self.active_entries[0] + self.active_entries[1]) / self.n

    def change(self, which: int, latents: Tensor, add: bool) -> None:
        """Add (``add=True``) or remove latents of SAE ``which`` (0 = small, 1 = large)."""
        latents = latents.to(self.e.device, torch.int64)
        if latents.numel() == 0:
            return
        if bool((self.included[which][latents] == add).any()):
            state = "already" if add else "not"
            raise ValueError(f"some latents of SAE {which} are {state} part of the stitched SAE")
        if not add and self.n_features - latents.numel() == 0:
            raise ValueError("cannot remove every latent of the stitched SAE")
        tokens, values, owner = self.columns[which].entries(latents)
        sign = -1.0 if add else 1.0  # e = x - reconstruction: adding a latent subtracts its part
        contrib = (sign * values.to(torch.float64))[:, None] * self.W[which][owner]
        # Work on the touched rows only: an in-place index_add_ into the full [n, d] residual
        # costs O(n d) per call on CPU, which would dominate a path of thousands of steps.
        touched, inverse = torch.unique(tokens, return_inverse=True)
        rows = self.e[touched].index_add_(0, inverse, contrib)
        self.e[touched] = rows
        self.e_sum += contrib.sum(dim=0)
        self.row_sq[touched] = rows.pow(2).sum(dim=1)
        self.included[which][latents] = add
        step = latents.numel() if add else -latents.numel()
        self.n_latents[which] += step
        self.active_entries[which] += (1 if add else -1) * int(self.counts[which][latents].sum())

    def small_latents(self) -> Tensor:
        return self.included[0].nonzero(as_tuple=True)[0]

    def large_latents(self) -> Tensor:
        return self.included[1].nonzero(as_tuple=True)[0]
