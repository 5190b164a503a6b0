"""The base class every sae_fast SAE shares: parameters, encode/decode, dead-latent tracking, decoder norms.

Conventions (kept identical in every architecture, kernel and file format):

- Parameters are named and shaped as in SAELens: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``,
  ``b_enc [d_sae]``, ``b_dec [d_in]`` so weights move between the libraries without transposes.
- The encoder sees the input centred by the decoder bias:
  ``pre = relu((x - b_dec) @ W_enc + b_enc)`` (SAELens' ``apply_b_dec_to_input=True``). Every
  architecture selects among these non-negative pre-activations.
- Inputs are ``[..., d_in]``; all statistics (L0, the batch top-k budget, theta, dead latents)
  count tokens, i.e. the product of the leading dimensions, never sequences.
- ``normalize_activations`` (SAELens's names, :mod:`sae_fast.sae.normalization`) is applied to every
  input first. Codes, losses, ``decode`` and ``decode_sparse`` live in that normalised space;
  ``forward`` and :meth:`reconstruct` map the reconstruction back to the input space.
"""

from __future__ import annotations

import abc
import hashlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sae_fast.autograd import kept_encoder_values, sparse_decode
from sae_fast.kernels.dispatch import check_backend, kernel_ops
from sae_fast.kernels.ops import KernelOps
from sae_fast.kernels.selection_rule import SelectionRule
from sae_fast.sae import interop
from sae_fast.sae.config import SAEConfig, SAEMetadata, check_metadata
from sae_fast.sae.normalization import (
    InputNormalization,
    check_normalization,
    expected_average_scale,
    normalize_tokens,
)
from sae_fast.sae.output import TrainingOutput
from sae_fast.sparse_codes import SparseCodes
from sae_fast.validation import check_activations, check_positive_int

DEFAULT_DEAD_TOKENS = 10_000_000


def init_seed(seed: int, d_in: int, d_sae: int) -> int:
    """The generator seed of an SAE's initialisation: ``seed`` mixed with its shape.

    Seeding with ``seed`` alone would make a d_sae=128 SAE exactly the first 128 rows of a
    d_sae=256 one, and stitching would then report that every small latent has a perfect match.
    """
    digest = hashlib.sha256(f"sae_fast-init:{seed}:{d_in}:{d_sae}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Reconstruction:
    """What :meth:`SparseAutoencoder.reconstruct` returns for ``x`` ``[..., d_in]`` (all over flattened tokens)."""

    codes: SparseCodes  # kept latents
    x_hat: Tensor  # [n_tokens, d_in] reconstruction in the input space
    normalized_x: Tensor  # [n_tokens, d_in] what the SAE encoded (x itself when it does not normalise)
    normalized_x_hat: Tensor  # [n_tokens, d_in] the reconstruction in that space (what the loss compares)


class SparseAutoencoder(nn.Module, abc.ABC):
    """Shared machinery; subclasses define :meth:`select` and :meth:`_training_pass`."""

    architecture: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[SparseAutoencoder]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.architecture:
            SparseAutoencoder._registry[cls.architecture] = cls

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        *,
        dead_tokens_threshold: int = DEFAULT_DEAD_TOKENS,
        check_finite: bool = True,
        backend: str = "auto",
        dense_training: bool = False,
        seed: int | None = None,
        normalize_activations: str = "none",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.d_in = check_positive_int(d_in, "d_in")
        self.d_sae = check_positive_int(d_sae, "d_sae")
        self.dead_tokens_threshold = check_positive_int(dead_tokens_threshold, "dead_tokens_threshold")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self.check_finite = bool(check_finite)
        self.dense_training = bool(dense_training)
        self.backend = backend
        self.normalize_activations = check_normalization(normalize_activations)
        factory = {"device": device, "dtype": dtype}
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae, **factory))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in, **factory))
        self.b_enc = nn.Parameter(torch.zeros(d_sae, **factory))
        self.b_dec = nn.Parameter(torch.zeros(d_in, **factory))
        # Tokens seen since each latent last fired: a latent is dead once this reaches the threshold.
        self.register_buffer("tokens_since_fired", torch.zeros(d_sae, dtype=torch.int64, device=device))
        if self.normalize_activations == "expected_average_only_in":
            # 0 until estimated from data (the first training batch, or estimate_activation_scale_).
            self.register_buffer("activation_scale", torch.zeros((), dtype=torch.float64, device=device))
        self._config: dict[str, Any] = {
            "d_in": d_in,
            "d_sae": d_sae,
            "dead_tokens_threshold": dead_tokens_threshold,
            "check_finite": self.check_finite,
            "normalize_activations": self.normalize_activations,
        }
        # Where the activations come from (hook_name, model_name, ...): shown in cfg, written to cfg.json.
        self._metadata: dict[str, Any] = {}
        self.reset_parameters(seed)

    # ------------------------------------------------------------------ set-up and config
    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Unit-norm random decoder rows and the tied encoder ``W_enc = W_dec.T`` (as Gao et al.)."""
        # Without a seed, draw from torch's global RNG so a user's torch.manual_seed governs it.
        generator = None
        if seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(init_seed(seed, self.d_in, self.d_sae))
        rows = torch.randn(self.d_sae, self.d_in, generator=generator, dtype=torch.float32)
        rows /= rows.norm(dim=1, keepdim=True)
        self.W_dec.copy_(rows)
        self.W_enc.copy_(rows.t())
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.tokens_since_fired.zero_()

    def config_dict(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able) that rebuild this SAE with :meth:`from_config_dict`.

        ``backend`` is left out: it is a choice of the machine that runs the SAE (a "cpp" SAE saved
        on a laptop must run on a GPU later), so files and checkpoints never pin it.
        """
        return {"architecture": self.architecture, **self._config, "dtype": str(self.dtype).split(".")[-1]}

    @staticmethod
    def from_config_dict(config: dict[str, Any], device: torch.device | str | None = None) -> SparseAutoencoder:
        """Build an untrained SAE of the architecture named in ``config["architecture"]``."""
        config = dict(config)
        architecture = config.pop("architecture", None)
        cls = SparseAutoencoder._registry.get(architecture)
        if cls is None:
            raise ValueError(
                f"unknown SAE architecture {architecture!r}; expected one of "
                f"{sorted(SparseAutoencoder._registry)}"
            )
        dtype_name = config.pop("dtype", "float32")
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {dtype_name!r} in SAE config")
        try:
            return cls(**config, device=device, dtype=dtype)
        except TypeError as error:
            raise ValueError(f"config does not match {cls.__name__}'s arguments: {error}") from error

    @property
    def cfg(self) -> SAEConfig:
        """A read-only, typed view of this SAE (shapes, architecture, k, dtype, hook and model names, ...).

        Rebuilt on every read, so it always describes the current weights; see :mod:`sae_fast.sae.config`.
        """
        config = self.config_dict()
        widths = config.get("matryoshka_widths")
        named = ("architecture", "d_in", "d_sae", "k", "normalize_activations", "dtype", "matryoshka_widths")
        return SAEConfig(
            architecture=self.architecture, d_in=self.d_in, d_sae=self.d_sae, k=config.get("k"),
            dtype=config["dtype"], device=str(self.device), normalize_activations=self.normalize_activations,
            metadata=SAEMetadata(self._metadata),
            hyperparameters=MappingProxyType({k: v for k, v in config.items() if k not in named}),
            matryoshka_widths=None if widths is None else tuple(widths),
        )  # fmt: skip

    @cfg.setter
    def cfg(self, value: object) -> None:
        raise AttributeError(
            "sae.cfg is read-only: it is rebuilt from the SAE on every read. Set hook_name, model_name and other "
            "facts about the activations with sae.set_metadata(hook_name=...); the rest is the weights' own"
        )

    def set_metadata(self, **facts: Any) -> SparseAutoencoder:
        """Record where this SAE's activations come from; returns the SAE.

        E.g. ``sae.set_metadata(model_name="gpt2", hook_name="blocks.8.hook_resid_pre", context_size=128)``.
        Any JSON-able facts are kept; ``None`` removes one. They appear in ``sae.cfg`` (``cfg.hook_name``,
        ``cfg.metadata``), are written by :meth:`save_pretrained` into ``cfg.json["metadata"]`` (where
        SAELens reads them) and are read back by ``load_pretrained``.
        """
        checked = check_metadata(facts, "set_metadata argument")
        for key, value in checked.items():
            if value is None:
                self._metadata.pop(key, None)
            else:
                self._metadata[key] = value
        return self

    @property
    def backend(self) -> str:
        """Which kernels run the ops: "auto", "torch", "cpp" or "triton" (see ``sae_fast.kernels.dispatch``)."""
        return self._backend

    @backend.setter
    def backend(self, backend: str) -> None:
        if backend == "dense":
            warnings.warn(
                "backend='dense' is deprecated: the dense training path is the flag dense_training=True "
                "(it runs on the plain-torch ops, backend='torch')", DeprecationWarning, stacklevel=3,
            )  # fmt: skip
            self.dense_training, backend = True, "torch"
        self._backend = check_backend(backend)

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_dec.dtype

    def extra_repr(self) -> str:
        shown = [f"{k}={v}" for k, v in self._config.items() if k not in ("check_finite",)]
        dense = ["dense_training=True"] if self.dense_training else []
        return ", ".join([*shown, f"backend={self.backend}", *dense])

    def save_pretrained(self, directory, *, metadata: dict[str, Any] | None = None):
        """Atomically write ``cfg.json`` + ``sae_weights.safetensors`` (loadable by SAELens 6).

        The same as ``sae_fast.save_pretrained(sae, directory)``.
        """
        writer = SparseAutoencoder._pretrained_writer
        if writer is None:
            raise RuntimeError("no SAE file writer is registered; import sae_fast (or sae_fast.io) first")
        return writer(self, directory, metadata=metadata)

    @classmethod
    def from_pretrained(
        cls, path_or_release: Any, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None,
        **kwargs: Any,
    ) -> SparseAutoencoder:  # fmt: skip
        """Load a saved SAE of this class (any format ``sae_fast.load_pretrained`` reads), in eval mode.

        ``BatchTopKSAE.from_pretrained(path)`` is ``load_pretrained(path)`` plus a check that the file
        holds a BatchTopK SAE; ``SparseAutoencoder.from_pretrained`` accepts every architecture.
        Keyword arguments go to ``load_pretrained`` (e.g. ``backend="cpp"``).
        """
        loader = SparseAutoencoder._pretrained_loader
        if loader is None:
            raise RuntimeError("no SAE file reader is registered; import sae_fast (or sae_fast.io) first")
        sae = loader(path_or_release, device=device, dtype=dtype, **kwargs)
        if not isinstance(sae, cls):
            raise TypeError(
                f"{path_or_release} holds a {type(sae).__name__} (architecture {sae.architecture!r}), not a "
                f"{cls.__name__}; load it with {type(sae).__name__}.from_pretrained(...) or sae_fast.load_pretrained(...)"
            )
        return sae

    # The file formats live above the modules (sae_fast.io imports them), so io registers its writer
    # and reader here instead of the module importing io.
    _pretrained_writer: ClassVar[Callable[..., Any] | None] = None
    _pretrained_loader: ClassVar[Callable[..., Any] | None] = None

    @staticmethod
    def register_pretrained_writer(writer: Callable[..., Any]) -> None:
        """Make :meth:`save_pretrained` call ``writer(sae, directory, metadata=...)``."""
        if not callable(writer):
            raise TypeError(f"writer must be callable, got {type(writer).__name__}")
        SparseAutoencoder._pretrained_writer = writer

    @staticmethod
    def register_pretrained_loader(loader: Callable[..., Any]) -> None:
        """Make :meth:`from_pretrained` call ``loader(path_or_release, device=..., dtype=..., **kwargs)``."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {type(loader).__name__}")
        SparseAutoencoder._pretrained_loader = loader

    # ------------------------------------------------------------------ SAELens / TransformerLens
    def as_hook(self, *, use_error_term: bool = False) -> Callable[..., Tensor]:
        """A TransformerLens hook that replaces the activation by this SAE's reconstruction.

        ``model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.hook_name, sae.as_hook())])``; see
        :func:`sae_fast.sae.interop.transformer_lens_hook`.
        """
        return interop.transformer_lens_hook(self, use_error_term=use_error_term)

    def to_saelens(self, *, device: torch.device | str | None = None, metadata: dict[str, Any] | None = None) -> Any:
        """This SAE as a real ``sae_lens.SAE`` (for ``HookedSAETransformer.add_sae``); needs sae-lens 6.

        See :func:`sae_fast.sae.interop.to_saelens`.
        """
        return interop.to_saelens(self, device=device, metadata=metadata)

    # ------------------------------------------------------------------ core maths
    def _tokens(self, x: Tensor) -> Tensor:
        return check_activations(x, self.d_in, device=self.device, check_finite=self.check_finite, dtype=self.dtype)

    def _normalized(self, x_tokens: Tensor) -> tuple[Tensor, InputNormalization]:
        scale = 1.0
        if self.normalize_activations == "expected_average_only_in":
            if not float(self.activation_scale) > 0:
                if not self.training:
                    raise ValueError(
                        "this SAE normalises with expected_average_only_in but its scale was never estimated; "
                        "call sae.estimate_activation_scale_(batches) or train it first"
                    )
                self.estimate_activation_scale_([x_tokens])
            scale = float(self.activation_scale)
        return normalize_tokens(x_tokens, self.normalize_activations, scale)

    def input_normalization(self, x: Tensor) -> tuple[Tensor, InputNormalization]:
        """``(tokens [n_tokens, d_in] this SAE encodes for x [..., d_in], how to map reconstructions back)``."""
        return self._normalized(self._tokens(x))

    def normalize_inputs(self, x: Tensor) -> Tensor:
        """The tokens ``[n_tokens, d_in]`` this SAE encodes for ``x`` ``[..., d_in]`` (its normalised space)."""
        return self.input_normalization(x)[0]

    @torch.no_grad()
    def estimate_activation_scale_(self, batches: Iterable[Tensor]) -> float:
        """Set the ``expected_average_only_in`` scale so the average token norm becomes ``sqrt(d_in)``."""
        if self.normalize_activations != "expected_average_only_in":
            raise ValueError(
                f"estimate_activation_scale_ is for normalize_activations='expected_average_only_in'; "
                f"this SAE uses {self.normalize_activations!r}"
            )
        total, count = 0.0, 0
        for batch in batches:
            x_tokens = self._tokens(batch)
            total += float(x_tokens.double().norm(dim=-1).sum())
            count += x_tokens.shape[0]
        if count == 0:
            raise ValueError("estimate_activation_scale_ needs at least one batch of activations")
        self.activation_scale.fill_(expected_average_scale(total / count, self.d_in))
        return float(self.activation_scale)

    def _ops(self) -> KernelOps:
        return kernel_ops(self.device, self.backend, self.dtype)

    def pre_activations(self, x_tokens: Tensor) -> Tensor:
        """``relu((x - b_dec) @ W_enc + b_enc)`` for flattened tokens ``[n, d_in]`` → ``[n, d_sae]``."""
        return torch.relu((x_tokens - self.b_dec) @ self.W_enc + self.b_enc)

    @abc.abstractmethod
    def _selection(self, n_tokens: int) -> SelectionRule:
        """The selection rule for a batch of ``n_tokens`` (mode-dependent for BatchTopK)."""

    def select(self, pre: Tensor, ops: KernelOps | None = None) -> SparseCodes:
        """Which pre-activations ``[n, d_sae]`` stay active; values are ``pre``'s. ``ops``: this SAE's by default."""
        return (ops or self._ops()).select(pre, self._selection(pre.shape[0]))

    def _encode_select(self, x_tokens: Tensor, ops: KernelOps) -> SparseCodes:
        """Kept codes of normalised tokens: one op, which need not hold the whole ``[n, d_sae]`` matrix."""
        rule = self._selection(x_tokens.shape[0])
        return ops.encode_select(x_tokens, self.W_enc, self.b_enc, self.b_dec, rule).codes

    @torch.no_grad()
    def encode_sparse(self, x: Tensor) -> SparseCodes:
        """Sparse codes of ``x`` ``[..., d_in]`` over its flattened tokens (values detached)."""
        return self._encode_select(self.normalize_inputs(x), self._ops())

    def encode(self, x: Tensor) -> Tensor:
        """Dense codes ``[..., d_sae]`` (zeros where a latent is inactive); differentiable."""
        x_tokens = self.normalize_inputs(x)
        pre = self.pre_activations(x_tokens)
        codes = self.select(pre.detach())
        return (pre * self._mask(codes)).reshape(*x.shape[:-1], self.d_sae)

    def decode(self, f: Tensor) -> Tensor:
        """``f @ W_dec + b_dec`` for dense codes ``f`` ``[..., d_sae]`` → ``[..., d_in]`` (normalised space)."""
        if not isinstance(f, Tensor) or not f.is_floating_point():
            raise TypeError(f"codes must be a floating-point tensor [..., {self.d_sae}], got {type(f).__name__}")
        if f.dim() == 0 or f.shape[-1] != self.d_sae:
            raise ValueError(f"codes must have last dimension d_sae={self.d_sae}, got shape {tuple(f.shape)}")
        if f.device != self.device:
            raise ValueError(f"codes are on {f.device} but the SAE is on {self.device}; move them with .to()")
        return f.to(self.dtype) @ self.W_dec + self.b_dec

    def decode_sparse(self, codes: SparseCodes) -> Tensor:
        """``x_hat`` ``[n_tokens, d_in]`` (normalised space) from sparse codes, costing O(nnz · d_in), no autograd."""
        if not isinstance(codes, SparseCodes):
            raise TypeError(f"codes must be SparseCodes (from sae.encode_sparse), got {type(codes).__name__}")
        if codes.d_sae != self.d_sae:
            raise ValueError(f"codes are over {codes.d_sae} latents but this SAE has d_sae={self.d_sae}")
        with torch.no_grad():
            return self._ops().sparse_decode(codes, self.W_dec, self.b_dec)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x`` in the input space, same shape; decodes sparsely (cost ∝ active latents)."""
        return self.reconstruct(x).x_hat.reshape(x.shape).to(x.dtype)

    def reconstruct(self, x: Tensor) -> Reconstruction:
        """Codes and reconstruction of ``x`` ``[..., d_in]`` from one encoder pass, in both spaces.

        Differentiable (through the kept entries only) when grad is enabled, for users who
        fine-tune through the SAE.
        """
        x_tokens, normalization = self.input_normalization(x)
        ops = self._ops()
        with torch.no_grad():
            codes = self._encode_select(x_tokens, ops)
        if torch.is_grad_enabled():
            x_hat = self._sparse_reconstruction(x_tokens, codes, ops)
        else:
            x_hat = ops.sparse_decode(codes, self.W_dec, self.b_dec)
        return Reconstruction(codes, normalization.restore(x_hat), x_tokens, x_hat)

    def _sparse_reconstruction(self, x_tokens: Tensor, codes: SparseCodes, ops, with_bias: bool = True) -> Tensor:
        """Differentiable ``x_hat`` from detached kept codes, touching only the kept entries."""
        values = kept_encoder_values(codes, x_tokens, self.b_dec, self.W_enc, self.b_enc, ops)
        return sparse_decode(codes.with_values(values), self.W_dec, self.b_dec if with_bias else None, ops)

    def _mask(self, codes: SparseCodes) -> Tensor:
        mask = torch.zeros(codes.n_tokens, self.d_sae, dtype=self.dtype, device=self.device)
        mask[codes.token_indices(), codes.latent_indices] = 1
        return mask

    # ------------------------------------------------------------------ training
    def training_loss(self, x: Tensor) -> TrainingOutput:
        """Loss and statistics of one training batch ``x`` ``[..., d_in]``.

        In training mode this also updates the dead-latent counters (and BatchTopK's theta), so
        call it once per optimiser step.
        """
        x_tokens = self.normalize_inputs(x)
        output = self._training_pass(x_tokens)
        if self.training:
            self._record_firing(output.codes)
        return output

    @abc.abstractmethod
    def _training_pass(self, x_tokens: Tensor) -> TrainingOutput:
        """Loss terms of one batch of flattened tokens (no counters updated here)."""

    def _output(
        self, x_tokens: Tensor, x_hat: Tensor, codes: SparseCodes, sparsity: Tensor | None = None,
        aux: Tensor | None = None, reconstructions: Tensor | None = None,
    ) -> TrainingOutput:
        """``reconstructions`` ``[L, n, d_in]`` (last = ``x_hat``): with L > 1 the loss sums every level's MSE."""
        zero = x_hat.new_zeros(())
        nested_mse = None
        if reconstructions is not None and reconstructions.shape[0] > 1:
            nested_mse = (reconstructions - x_tokens).pow(2).mean(dim=(1, 2))
            mse, reconstruction_loss = nested_mse[-1], nested_mse.sum()
        else:
            mse = reconstruction_loss = (x_hat - x_tokens).pow(2).mean()
        sparsity = zero if sparsity is None else sparsity
        aux = zero if aux is None else aux
        counts = codes.counts()
        detached = codes.with_values(codes.values.detach())
        return TrainingOutput(
            loss=reconstruction_loss + sparsity + aux, mse=mse, aux_loss=aux, sparsity_loss=sparsity,
            l0=counts.to(torch.float32).mean(), active_counts=counts, codes=detached, x_hat=x_hat, target=x_tokens,
            nested_mse=nested_mse,
        )

    @torch.no_grad()
    def _record_firing(self, codes: SparseCodes) -> None:
        self.tokens_since_fired += codes.n_tokens
        self.tokens_since_fired[codes.latent_indices] = 0

    def dead_latent_mask(self) -> Tensor:
        """Latents that have not fired for ``dead_tokens_threshold`` training tokens."""
        return self.tokens_since_fired >= self.dead_tokens_threshold

    # ------------------------------------------------------------------ step-local training state
    # The buffers training_loss updates, exposed so data-parallel training can merge them without
    # knowing their names: each shard of a step starts from the same snapshot, its result is
    # combined with every other shard's by the reduction named here, and merge_training_state_
    # turns the reduced states into the state after the step (sae_fast.training.distributed).
    def training_state(self) -> dict[str, Tensor]:
        """A copy of every buffer :meth:`training_loss` updates, by name."""
        return {"tokens_since_fired": self.tokens_since_fired.clone()}

    @torch.no_grad()
    def load_training_state_(self, state: dict[str, Tensor]) -> None:
        """Put back a :meth:`training_state` snapshot (e.g. to undo a step that failed)."""
        current = self.training_state()
        if set(state) != set(current):
            raise ValueError(f"training state must hold exactly {sorted(current)}, got {sorted(state)}")
        for name, tensor in state.items():
            getattr(self, name).copy_(tensor)

    def training_state_reductions(self) -> dict[str, str]:
        """How to combine each :meth:`training_state` entry across the shards of one step.

        ``"min"``, ``"max"``, or ``"mean"`` (summed in the buffer's dtype, then divided by the
        number of shards).
        """
        # A latent fired in some shard exactly when that shard reset its counter to 0.
        return {"tokens_since_fired": "min"}

    @torch.no_grad()
    def merge_training_state_(self, start: dict[str, Tensor], reduced: dict[str, Tensor], n_tokens: int) -> None:
        """Set the state after a step of ``n_tokens`` tokens (all shards) from the snapshot taken
        before it and the shards' states combined by :meth:`training_state_reductions`."""
        counters = start["tokens_since_fired"]
        fired = reduced["tokens_since_fired"] == 0
        self.tokens_since_fired.copy_(torch.where(fired, torch.zeros_like(counters), counters + n_tokens))

    def training_statistics(self) -> dict[str, float]:
        """Scalars of the training state worth logging after each step."""
        return {"dead_latents": int(self.dead_latent_mask().sum())}

    # ------------------------------------------------------------------ decoder constraints
    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every decoder row to unit norm (call after each optimiser step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.dtype).tiny)

    @torch.no_grad()
    def remove_parallel_decoder_grad_(self) -> None:
        """Drop the gradient component parallel to each decoder row (call before the step).

        With unit-norm rows, that component would only change the norm, which renormalisation
        then undoes; removing it keeps Adam's moment estimates about directions only.
        """
        grad = self.W_dec.grad
        if grad is None:
            return
        # Row dots as a batched product and one fused update: no [d_sae, d_in] temporaries
        # (the elementwise form took 72 ms at d_sae = 24576 on 2 cores).
        rows = self.W_dec.unsqueeze(1)
        norms_sq = torch.bmm(rows, rows.transpose(1, 2)).flatten().clamp_min(torch.finfo(self.dtype).tiny)
        along = torch.bmm(rows, grad.unsqueeze(2)).flatten() / norms_sq
        grad.addcmul_(self.W_dec, along.unsqueeze(1), value=-1)

    def after_optimizer_step_(self) -> None:
        """Re-impose parameter constraints after a step; subclasses add theirs."""
        self.normalize_decoder_()

    @torch.no_grad()
    def init_b_dec_from_data_(self, x: Tensor) -> None:
        """Set ``b_dec`` to the mean of ``x`` (in the normalised space) so the encoder starts on centred inputs."""
        self.b_dec.copy_(self.normalize_inputs(x).mean(dim=0))

