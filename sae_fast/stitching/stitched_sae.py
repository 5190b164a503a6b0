"""``StitchedSAE``: latents ``L0`` of a small SAE and ``L1`` of a large SAE as one SAE (paper eq. 5).

``x_hat = a * b_dec0 + (1 - a) * b_dec1 + sum_{l in L0} W_dec0[l] f0_l(x) + sum_{l in L1} W_dec1[l] f1_l(x)``
with ``a = |L0| / (|L0| + |L1|)``. Each part's codes come from its own SAE's encoder (which
centres ``x`` with its own ``b_dec``), so the stitched latents behave exactly as in their SAEs.
Stitched latent ``i`` is ``L0[i]`` for ``i < |L0|`` and ``L1[i - |L0|]`` after that.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sae_fast.autograd import sparse_decode
from sae_fast.kernels.dispatch import kernel_ops
from sae_fast.sae.base import Reconstruction
from sae_fast.sparse_codes import SparseCodes
from sae_fast.stitching.encoded import check_same_normalization


def _latent_set(latents: Tensor | list[int] | None, d_sae: int, name: str) -> Tensor:
    t = torch.as_tensor([] if latents is None else latents, dtype=torch.int64).flatten()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= d_sae):
        raise ValueError(f"{name} holds latent indices outside [0, {d_sae})")
    if torch.unique(t).numel() != t.numel():
        raise ValueError(f"{name} holds repeated latent indices")
    return t


def restrict_codes(codes: SparseCodes, latents: Tensor, offset: int, d_total: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(token, stitched_latent, value)`` of the entries of ``codes`` whose latent is in ``latents``."""
    new_index = torch.full((codes.d_sae,), -1, dtype=torch.int64, device=codes.latent_indices.device)
    new_index[latents.to(new_index.device)] = torch.arange(latents.numel(), device=new_index.device) + offset
    mapped = new_index[codes.latent_indices]
    keep = mapped >= 0
    return codes.token_indices()[keep], mapped[keep], codes.values[keep]


class StitchedSAE(nn.Module):
    """Two SAEs combined latent-wise; use like an SAE (``encode``/``encode_sparse``/``decode``/``forward``).

    The SAEs are registered as submodules, so ``.eval()`` reaches them (BatchTopK then uses theta;
    call it before evaluating).
    """

    def __init__(self, small: nn.Module, large: nn.Module, small_latents=None, large_latents=None) -> None:
        super().__init__()
        if small.W_dec.shape[1] != large.W_dec.shape[1]:
            raise ValueError(
                f"the SAEs reconstruct different widths ({small.W_dec.shape[1]} vs {large.W_dec.shape[1]})"
            )
        if small.W_dec.device != large.W_dec.device:
            raise ValueError("both SAEs must be on the same device")
        self.small, self.large = small, large
        self.register_buffer("small_latents", _latent_set(small_latents, small.W_dec.shape[0], "small_latents").to(small.W_dec.device))
        self.register_buffer("large_latents", _latent_set(large_latents, large.W_dec.shape[0], "large_latents").to(small.W_dec.device))
        if self.d_sae == 0:
            raise ValueError("a stitched SAE needs at least one latent (L0 and L1 are both empty)")

    @property
    def d_in(self) -> int:
        return self.small.W_dec.shape[1]

    @property
    def d_sae(self) -> int:
        return self.small_latents.numel() + self.large_latents.numel()

    @property
    def alpha(self) -> float:
        """``|L0| / (|L0| + |L1|)``, the small SAE's share of the decoder bias."""
        return self.small_latents.numel() / self.d_sae

    @property
    def W_dec(self) -> Tensor:
        return torch.cat([self.small.W_dec[self.small_latents], self.large.W_dec[self.large_latents]])

    @property
    def b_dec(self) -> Tensor:
        return self.alpha * self.small.b_dec + (1.0 - self.alpha) * self.large.b_dec

    def encode_sparse(self, x: Tensor) -> SparseCodes:
        """Codes over the stitched latents (canonical CSR: ascending stitched index per token)."""
        c0, c1 = self.small.encode_sparse(x), self.large.encode_sparse(x)
        t0, l0, v0 = restrict_codes(c0, self.small_latents, 0, self.d_sae)
        t1, l1, v1 = restrict_codes(c1, self.large_latents, self.small_latents.numel(), self.d_sae)
        tokens, latents, values = torch.cat([t0, t1]), torch.cat([l0, l1]), torch.cat([v0, v1.to(v0.dtype)])
        order = torch.argsort(tokens * self.d_sae + latents)
        counts = torch.bincount(tokens, minlength=c0.n_tokens)
        offsets = torch.zeros(c0.n_tokens + 1, dtype=torch.int64, device=tokens.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        return SparseCodes(offsets, latents[order], values[order], self.d_sae)

    def encode(self, x: Tensor) -> Tensor:
        """Dense stitched codes ``[..., |L0| + |L1|]``."""
        f0 = self.small.encode(x)[..., self.small_latents]
        f1 = self.large.encode(x)[..., self.large_latents]
        return torch.cat([f0, f1.to(f0.dtype)], dim=-1)

    def decode(self, f: Tensor) -> Tensor:
        if f.shape[-1] != self.d_sae:
            raise ValueError(f"codes must have last dimension d_sae={self.d_sae}, got shape {tuple(f.shape)}")
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x`` in the input space, same shape."""
        return self.reconstruct(x).x_hat.reshape(x.shape).to(x.dtype)

    def reconstruct(self, x: Tensor) -> Reconstruction:
        """Codes and reconstruction in both spaces, as :meth:`SparseAutoencoder.reconstruct`.

        The stitched decoder reconstructs in the SAEs' shared normalised space (see
        :func:`~sae_fast.stitching.encoded.shared_normalized_inputs`); the small SAE's per-token
        statistics map it back.
        """
        check_same_normalization(self.small, self.large)
        normalized, normalization = self.small.input_normalization(x)
        codes = self.encode_sparse(x)
        W_dec = self.W_dec
        x_hat = sparse_decode(codes, W_dec, self.b_dec, kernel_ops(W_dec.device, "auto", W_dec.dtype))
        return Reconstruction(codes, normalization.restore(x_hat), normalized, x_hat)
