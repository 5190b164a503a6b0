"""The one configuration dataclass of the meta-SAE workflow (defaults follow the paper, section 5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sae_fast.config_fields import documented
from sae_fast.training.config import TrainConfig, nested_train_config
from sae_fast.validation import check_positive_int

PAPER_META_LATENTS = 2304
PAPER_META_K = 4
PAPER_META_LR = 1e-4
PAPER_META_EPOCHS = 2000
PAPER_META_BATCH_SIZE = 4096


PAPER_META_TRAINING = {"lr": PAPER_META_LR, "batch_size": PAPER_META_BATCH_SIZE, "total_tokens": None}
"""The meta-SAE's training defaults; ``total_tokens`` is None because epochs, not tokens, end a run."""


@dataclass
class MetaSAEConfig:
    """A BatchTopK meta-SAE trained on the decoder rows of another SAE.

    The paper decomposes the 49,152 latents of a GPT-2 SAE with 2,304 meta-latents, on average
    k = 4 active per latent, Adam at lr 1e-4, batch 4096, for 2,000 epochs (the data set is tiny,
    so it is revisited many times), and reports 55.47% of the variance of the rows explained.

    The optimiser, batch size, seed, device, logging and checkpointing are the nested ``train``
    (a :class:`~sae_fast.training.TrainConfig`); pass a dict to change some of them and keep the
    paper's meta-SAE values for the rest: ``MetaSAEConfig(k=2, train={"lr": 1e-3, "progress": False})``.
    """

    n_meta_latents: int = documented(PAPER_META_LATENTS, "Dictionary size of the meta-SAE.")
    k: int = documented(PAPER_META_K, "Average active meta-latents per decoder row (BatchTopK budget per row).")
    epochs: int = documented(PAPER_META_EPOCHS, "Passes over the decoder rows, each in a fresh seeded order.")
    normalize_rows: bool = documented(
        True,
        "Decompose directions: scale every decoder row to unit norm first (a no-op for the usual unit-norm "
        "SAE decoders, but keeps an SAE saved with folded norms from weighting its rows).",
    )
    learn_decoder_bias: bool = documented(
        True,
        "Learn the meta-SAE's ``b_dec`` (a standard SAE, as in the paper). With False it stays zero, so every "
        "row is a pure weighted sum of meta-directions; on the synthetic benchmark this is what lets "
        "meta-latents line up with the true atoms (a learnt bias absorbs the rows' shared mean).",
    )
    dead_after_epochs: int = documented(
        10,
        "A meta-latent counts as dead (and gets the aux loss) after this many epochs without firing.",
    )
    aux_coefficient: float = documented(1 / 32, "Weight of the aux loss that revives dead meta-latents.")
    backend: Literal["auto", "torch", "cpp", "triton"] = documented(
        "auto", "Sparse-kernel backend of the meta-SAE: auto (Triton on CUDA, C++ on CPU), torch, cpp or triton.")
    train: TrainConfig = documented(
        factory=lambda: TrainConfig(**PAPER_META_TRAINING),
        help="Optimisation of the meta-SAE. batch_size counts decoder rows per step (lowered to the number of "
             "rows when there are fewer); seed also orders the rows of every epoch; total_tokens and "
             "init_b_dec_from_data are set by the workflow (epochs and learn_decoder_bias decide them).",
    )

    def __post_init__(self) -> None:
        self.train = nested_train_config(self.train, PAPER_META_TRAINING, "MetaSAEConfig")
        for name in ("n_meta_latents", "k", "epochs", "dead_after_epochs"):
            check_positive_int(getattr(self, name), f"MetaSAEConfig.{name}")
        if self.k > self.n_meta_latents:
            raise ValueError(f"MetaSAEConfig.k={self.k} must be <= n_meta_latents={self.n_meta_latents}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train"] = self.train.to_dict()
        return out
