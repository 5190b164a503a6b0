"""The one configuration dataclass of the meta-SAE workflow (defaults follow the paper, section 5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sae_fast.training.config import PAPER_BETAS
from sae_fast.validation import check_positive_int

PAPER_META_LATENTS = 2304
PAPER_META_K = 4
PAPER_META_LR = 1e-4
PAPER_META_EPOCHS = 2000
PAPER_META_BATCH_SIZE = 4096


@dataclass
class MetaSAEConfig:
    """A BatchTopK meta-SAE trained on the decoder rows of another SAE.

    The paper decomposes the 49,152 latents of a GPT-2 SAE with 2,304 meta-latents, on average
    k = 4 active per latent, Adam at lr 1e-4, batch 4096, for 2,000 epochs (the data set is tiny,
    so it is revisited many times), and reports 55.47% of the variance of the rows explained.
    """

    n_meta_latents: int = PAPER_META_LATENTS
    """Dictionary size of the meta-SAE."""
    k: int = PAPER_META_K
    """Average active meta-latents per decoder row (BatchTopK budget per row)."""
    epochs: int = PAPER_META_EPOCHS
    """Passes over the decoder rows, each in a fresh seeded order."""
    batch_size: int = PAPER_META_BATCH_SIZE
    """Decoder rows per step; lowered to the number of rows when there are fewer."""
    lr: float = PAPER_META_LR
    betas: tuple[float, float] = PAPER_BETAS
    seed: int = 0
    """Seeds the meta-SAE's initialisation and the order of the rows in every epoch."""
    normalize_rows: bool = True
    """Decompose directions: scale every decoder row to unit norm first (a no-op for the usual
    unit-norm SAE decoders, but keeps an SAE saved with folded norms from weighting its rows)."""
    learn_decoder_bias: bool = True
    """Learn the meta-SAE's ``b_dec`` (a standard SAE, as in the paper). With False it stays zero,
    so every row is a pure weighted sum of meta-directions; on the synthetic benchmark this is what
    lets meta-latents line up with the true atoms (a learnt bias absorbs the rows' shared mean)."""
    dead_after_epochs: int = 10
    """A meta-latent counts as dead (and gets the aux loss) after this many epochs without firing."""
    aux_coefficient: float = 1 / 32
    device: str = "cpu"
    backend: str = "auto"
    progress: bool = True
    log_every: int = 10
    log_jsonl: str | None = None
    checkpoint_dir: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        for name in ("n_meta_latents", "k", "epochs", "batch_size", "dead_after_epochs", "log_every"):
            check_positive_int(getattr(self, name), f"MetaSAEConfig.{name}")
        if self.k > self.n_meta_latents:
            raise ValueError(f"MetaSAEConfig.k={self.k} must be <= n_meta_latents={self.n_meta_latents}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"MetaSAEConfig.lr must be > 0, got {self.lr!r}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out
