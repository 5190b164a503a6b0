"""A tiny randomly initialised Llama bridge and a character tokenizer, for fast offline tests.

Built from a ``transformers`` ``LlamaConfig`` (the architecture of SmolLM2) and wrapped with the same
``boot_transformers(hf_model=...)`` path as the real model, so tests exercise the production code path
on every TransformerLens version that has the bridge (``boot_native`` is 4.x only). Boots in well under a
second.
"""

from __future__ import annotations

from typing import Any

import torch

from sae_fast.validation import import_optional

# Printable ASCII plus newline; everything else maps to <unk>. Ids 0..2 are the special tokens.
_SPECIALS = ["<|endoftext|>", "<unk>", "<pad>"]
_CHARS = ["\n"] + [chr(code) for code in range(32, 127)]


def char_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` with one token per character (vocabulary of 99 ids), built offline."""
    tokenizers = import_optional("tokenizers", "lm", "the character tokenizer")
    Regex, Tokenizer, models, pre_tokenizers = (
        tokenizers.Regex, tokenizers.Tokenizer, tokenizers.models, tokenizers.pre_tokenizers
    )
    PreTrainedTokenizerFast = import_optional("transformers", "lm", "the character tokenizer").PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(_SPECIALS + _CHARS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", unk_token="<unk>", pad_token="<pad>"
    )


def tiny_random_model(
    *, d_model: int = 32, n_layers: int = 3, n_heads: int = 4, seed: int = 0, device: str | torch.device = "cpu"
) -> Any:
    """A randomly initialised Llama-architecture ``TransformerBridge`` with :func:`char_tokenizer`.

    Same seed, same weights. Hook names are those of any bridge (``blocks.{i}.hook_resid_post`` ...).
    """
    transformers = import_optional("transformers", "lm", "the tiny random language model")
    LlamaConfig, LlamaForCausalLM = transformers.LlamaConfig, transformers.LlamaForCausalLM

    from sae_fast.activations.models import load_model

    tokenizer = char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=max(1, n_heads // 2),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = LlamaForCausalLM(config)
    return load_model(hf_model, device, torch.float32, tokenizer=tokenizer, model_name="tiny-random-llama")
