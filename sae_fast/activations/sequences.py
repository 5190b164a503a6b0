"""Pack tokenized documents into fixed-length token sequences.

Documents are tokenized without special tokens, joined with a separator token (``<|endoftext|>`` when
the vocabulary has it, as in GPT-2 / SmolLM2 pretraining, else the tokenizer's EOS) and cut into
sequences of ``seq_len`` tokens; the unfinished tail is dropped. Sequences therefore start mid-document,
as in LM pretraining. With ``prepend_bos`` every sequence starts with the BOS token followed by
``seq_len - 1`` text tokens (for models trained with a BOS; SmolLM2's tokenizer adds none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import torch
from torch import Tensor

from sae_fast.validation import check_int, check_positive_int

DOCUMENT_SEPARATOR = "<|endoftext|>"


def default_separator_token_id(tokenizer: Any) -> int | None:
    """``<|endoftext|>``'s id if the vocabulary has it, else the EOS id (None if neither exists)."""
    vocab = tokenizer.get_vocab()
    if DOCUMENT_SEPARATOR in vocab:
        return int(vocab[DOCUMENT_SEPARATOR])
    eos = getattr(tokenizer, "eos_token_id", None)
    return None if eos is None else int(eos)


def token_sequences(
    texts: Iterable[str],
    tokenizer: Any,
    seq_len: int,
    *,
    separator_token_id: int | None | str = "auto",
    prepend_bos: bool = False,
    docs_per_call: int = 64,
) -> Iterator[Tensor]:
    """Yield int64 ``[seq_len]`` token sequences packed from ``texts`` (see the module docstring).

    ``separator_token_id``: ``"auto"`` (:func:`default_separator_token_id`), an id, or None for none.
    Documents are tokenized ``docs_per_call`` at a time, which is what makes fast tokenizers fast.
    """
    check_int(seq_len, "seq_len", lower=2, hint="a sequence needs a token to predict from and one to predict")
    if separator_token_id == "auto":
        separator_token_id = default_separator_token_id(tokenizer)
    elif separator_token_id is not None and not isinstance(separator_token_id, int):
        raise TypeError(f"separator_token_id must be 'auto', an int or None, got {separator_token_id!r}")
    bos: list[int] = []
    if prepend_bos:
        if getattr(tokenizer, "bos_token_id", None) is None:
            raise ValueError("prepend_bos=True but the tokenizer has no BOS token; use prepend_bos=False")
        bos = [int(tokenizer.bos_token_id)]
    body_len = seq_len - len(bos)
    separator = [] if separator_token_id is None else [separator_token_id]

    pending: list[int] = []
    documents = iter(texts)
    while True:
        chunk = list(islice(documents, docs_per_call))
        if not chunk:
            return
        bad = [i for i, t in enumerate(chunk) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"text sources must yield strings; got {type(chunk[bad[0]]).__name__}")
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if not ids:
                continue
            pending.extend(ids)
            pending.extend(separator)
        n_full = len(pending) // body_len
        for index in range(n_full):
            body = pending[index * body_len : (index + 1) * body_len]
            yield torch.tensor(bos + body, dtype=torch.int64)
        del pending[: n_full * body_len]


def batched(sequences: Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Stack ``[seq_len]`` sequences into ``[batch_size, seq_len]`` batches; the last one may be smaller."""
    check_positive_int(batch_size, "batch_size")
    iterator = iter(sequences)
    while True:
        group = list(islice(iterator, batch_size))
        if not group:
            return
        yield torch.stack(group)
