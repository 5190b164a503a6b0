"""The dense BatchTopK training step as SAELens / dictionary_learning write it, kept in one place.

It is the baseline every training-step benchmark measures against, and the tests use it as an
independent statement of the losses sae_fast's sparse path must equal. Written as the peers write it,
not with sae_fast's code: a dense encoder, ``torch.topk`` over the flattened ``n * d_sae`` batch,
dense codes scattered from it, a dense decode (one prefix at a time for a Matryoshka SAE), the aux
top-k over the dead-masked dense pre-activations, and autograd for every gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

AUX_COEFFICIENT = 1 / 32
"""The peers' weight of the aux loss (the BatchTopK paper's alpha)."""


def dense_batch_topk(pre: Tensor, k_total: int) -> Tensor:
    """Dense codes keeping the ``k_total`` largest entries of the whole batch ``pre``, zeros elsewhere."""
    top = torch.topk(pre.reshape(-1), k_total, sorted=False)
    return torch.zeros_like(pre).reshape(-1).scatter_(0, top.indices, top.values).reshape(pre.shape)


def dense_topk(pre: Tensor, k: int) -> Tensor:
    """Dense codes keeping the ``k`` largest entries of every row of ``pre``, zeros elsewhere."""
    top = torch.topk(pre, k, dim=1, sorted=False)
    return torch.zeros_like(pre).scatter_(1, top.indices, top.values)


def dense_batch_topk_codes(sae: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """The pre-activations ``[n, d_sae]`` and the dense codes that keep the batch's ``n * k`` largest."""
    pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    return pre, dense_batch_topk(pre, x.shape[0] * sae.k)


def dense_prefix_mses(sae: nn.Module, x: Tensor, codes: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The full reconstruction and the MSE of every nested prefix (one prefix, the whole SAE, if not Matryoshka).

    A Matryoshka level decodes its slice of the codes and adds it to the previous level's reconstruction.
    """
    ends = list(getattr(sae, "matryoshka_widths", None) or [sae.d_sae])
    decoded, start, mses = sae.b_dec, 0, []
    for end in ends:
        decoded = codes[:, start:end] @ sae.W_dec[start:end] + decoded
        mses.append((decoded - x).pow(2).mean())
        start = end
    return decoded, mses


def dense_aux_loss(sae: nn.Module, x: Tensor, pre: Tensor, x_hat: Tensor) -> Tensor:
    """The dead latents' top-``aux_k`` pre-activations, decoded without bias, fit to the residual ``x - x_hat``."""
    dead = sae.dead_latent_mask()
    aux_codes = dense_topk(pre * dead, min(sae.aux_k, int(dead.sum())))
    return (aux_codes @ sae.W_dec - (x - x_hat).detach()).pow(2).mean() * AUX_COEFFICIENT


def dense_peer_loss(sae: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """The training loss (the prefixes' summed MSE plus the aux loss) and the dense codes it used."""
    pre, codes = dense_batch_topk_codes(sae, x)
    x_hat, mses = dense_prefix_mses(sae, x, codes)
    return sum(mses) + dense_aux_loss(sae, x, pre, x_hat), codes


def dense_peer_step(sae: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor) -> None:
    """One optimiser step: loss, backward, Adam, unit-norm decoder rows, dead-latent counters."""
    loss, codes = dense_peer_loss(sae, x)
    loss.backward()
    sae.remove_parallel_decoder_grad_()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sae.normalize_decoder_()
    with torch.no_grad():
        sae.tokens_since_fired += x.shape[0]
        sae.tokens_since_fired[(codes > 0).any(0)] = 0
