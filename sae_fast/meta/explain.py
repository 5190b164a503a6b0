"""Explain latents and meta-latents by their top-activating token contexts, without an external LLM.

A latent is shown by the token windows where it fires hardest; a meta-latent (which never sees
tokens) by the SAE latents that use it most, each with its own top contexts, which is how the
paper's explanations of meta-latents were built. A user-supplied ``explainer(contexts) -> str``
(e.g. a call to a local LLM) can add a one-line description to each; the page is a static HTML
file plus the same content as Markdown.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sae_fast.meta.decompose import MetaDecomposition
from sae_fast.sae.base import SparseAutoencoder
from sae_fast.sae.eval_mode import eval_mode
from sae_fast.sparse_codes import SparseCodes
from sae_fast.io.atomic import atomic_write_bytes
from sae_fast.validation import check_int, check_positive_int


@dataclass(frozen=True)
class TokenContext:
    """A window of tokens around one activating token (``tokens[position]``)."""

    tokens: tuple[str, ...]
    position: int
    activation: float

    def text(self, marker: tuple[str, str] = ("[[", "]]")) -> str:
        """The window as one string, the activating token wrapped in ``marker``."""
        parts = list(self.tokens)
        parts[self.position] = marker[0] + parts[self.position] + marker[1]
        return "".join(parts)


Explainer = Callable[[Sequence[TokenContext]], str]
"""The hook for a user-supplied explainer: contexts in, one-line description out."""

ContextLookup = Callable[[int], tuple[Sequence[str], int]]
"""Maps a global token index of the activation stream to ``(token strings of its window, position)``."""


class TopActivations:
    """Streaming top-``n`` activations of every latent over a stream of sparse codes.

    Only the kept entries are touched, so tracking a 49k-latent SAE costs O(nnz) per batch.
    """

    def __init__(self, n_latents: int, n_top: int = 10) -> None:
        self.n_latents = check_positive_int(n_latents, "n_latents")
        self.n_top = check_positive_int(n_top, "n_top")
        self.values = torch.full((n_latents, n_top), float("-inf"))
        self.token_ids = torch.full((n_latents, n_top), -1, dtype=torch.int64)

    def update(self, codes: SparseCodes, first_token_id: int) -> None:
        """Fold in the codes of tokens ``first_token_id, first_token_id + 1, ...``."""
        if codes.d_sae != self.n_latents:
            raise ValueError(f"codes have d_sae={codes.d_sae}, the tracker {self.n_latents}")
        if codes.nnz == 0:
            return
        latents = codes.latent_indices.cpu()
        values = codes.values.detach().float().cpu()
        tokens = codes.token_indices().cpu() + first_token_id
        # Sort entries by (latent, value descending); the rank inside each latent's run picks its top n.
        order = torch.argsort(values, descending=True, stable=True)
        order = order[torch.argsort(latents[order], stable=True)]
        latents, values, tokens = latents[order], values[order], tokens[order]
        starts = torch.searchsorted(latents, latents, right=False)
        rank = torch.arange(latents.numel()) - starts
        keep = rank < self.n_top
        latents, values, tokens, rank = latents[keep], values[keep], tokens[keep], rank[keep]
        batch_values = torch.full_like(self.values, float("-inf"))
        batch_tokens = torch.full_like(self.token_ids, -1)
        batch_values[latents, rank] = values
        batch_tokens[latents, rank] = tokens
        merged_values = torch.cat([self.values, batch_values], dim=1)
        merged_tokens = torch.cat([self.token_ids, batch_tokens], dim=1)
        best = torch.topk(merged_values, self.n_top, dim=1)
        self.values = best.values
        self.token_ids = torch.gather(merged_tokens, 1, best.indices)

    def top(self, latent: int) -> list[tuple[int, float]]:
        """``(token id, activation)`` pairs of one latent, strongest first."""
        found = self.token_ids[latent] >= 0
        return list(zip(self.token_ids[latent][found].tolist(), self.values[latent][found].tolist()))


def collect_top_activations(
    sae: SparseAutoencoder, activations: Iterable[Tensor], n_top: int = 10
) -> TopActivations:
    """Top-``n_top`` tokens of every latent of ``sae`` (eval mode) over a stream of ``[n, d_in]`` batches.

    Token ids count the stream's tokens in order, from 0: the id space a :data:`ContextLookup`
    for the same stream must use.
    """
    tracker = TopActivations(sae.d_sae, n_top)
    seen = 0
    with eval_mode(sae):
        for batch in activations:
            codes = sae.encode_sparse(batch.to(sae.device))  # validates the width before flattening
            tracker.update(codes, seen)
            seen += codes.n_tokens
    if seen == 0:
        raise ValueError("the activation stream was empty; pass at least one batch")
    return tracker


@dataclass(frozen=True)
class LatentCard:
    """One entry of the page: a latent or a meta-latent, its contexts and optional explanation."""

    title: str
    contexts: tuple[TokenContext, ...]
    explanation: str | None = None
    members: tuple[tuple[int, float], ...] = ()  # meta-latents: (SAE latent, weight), strongest first


def latent_cards(
    tracker: TopActivations, lookup: ContextLookup, latents: Iterable[int],
    explainer: Explainer | None = None, n_contexts: int = 5,
) -> list[LatentCard]:
    """Cards of SAE latents: their top contexts, and the explainer's text if one is given."""
    cards = []
    for latent in latents:
        contexts = _contexts(tracker, lookup, latent, n_contexts)
        text = _explain(explainer, contexts)
        cards.append(LatentCard(f"latent {latent}", tuple(contexts), text))
    return cards


def meta_latent_cards(
    decomposition: MetaDecomposition, tracker: TopActivations, lookup: ContextLookup,
    meta_latents: Iterable[int], explainer: Explainer | None = None, n_members: int = 5,
    contexts_per_member: int = 2,
) -> list[LatentCard]:
    """Cards of meta-latents: their strongest member latents, each with its top contexts."""
    cards = []
    for meta_latent in meta_latents:
        latents, weights = decomposition.latents_sharing(meta_latent)
        members = tuple(zip(latents[:n_members].tolist(), weights[:n_members].tolist()))
        contexts = [c for latent, _ in members for c in _contexts(tracker, lookup, latent, contexts_per_member)]
        text = _explain(explainer, contexts)
        cards.append(LatentCard(f"meta-latent {meta_latent}", tuple(contexts), text, members))
    return cards


def cache_context_lookup(reader, tokenizer, before: int = 12, after: int = 4) -> ContextLookup:
    """A :data:`ContextLookup` for an activation cache whose rows were streamed in storage order.

    ``reader`` is an :class:`~sae_fast.activations.ActivationCacheReader` (its ``row_origin`` maps a
    row to ``(sequence, position)`` and ``tokens`` holds the token ids); each token of the window is
    decoded on its own so the activating one can be highlighted.
    """
    check_int(before, "before", lower=0)
    check_int(after, "after", lower=0)

    def lookup(row: int) -> tuple[list[str], int]:
        sequences, positions = reader.row_origin(row)
        sequence, position = int(sequences), int(positions)
        ids = reader.tokens[sequence]
        start, stop = max(0, position - before), min(len(ids), position + after + 1)
        return [tokenizer.decode([int(t)]) for t in ids[start:stop]], position - start

    return lookup


def _contexts(tracker: TopActivations, lookup: ContextLookup, latent: int, n: int) -> list[TokenContext]:
    out = []
    for token_id, value in tracker.top(latent)[:n]:
        tokens, position = lookup(token_id)
        if not 0 <= position < len(tokens):
            raise ValueError(f"context lookup returned position {position} outside its {len(tokens)} tokens")
        out.append(TokenContext(tuple(tokens), int(position), float(value)))
    return out


def _explain(explainer: Explainer | None, contexts: Sequence[TokenContext]) -> str | None:
    if explainer is None or not contexts:
        return None
    text = explainer(contexts)
    if not isinstance(text, str):
        raise TypeError(f"explainer must return a str, got {type(text).__name__}")
    return text


# ---------------------------------------------------------------------------------------- the page
def _html_context(context: TokenContext) -> str:
    spans = []
    for i, token in enumerate(context.tokens):
        token = html.escape(token).replace("\n", "\u21b5")
        if i == context.position:
            spans.append(f'<mark title="{context.activation:.3f}">{token}</mark>')
        else:
            spans.append(token)
    return f'<li><span class="act">{context.activation:.3f}</span> <code>{"".join(spans)}</code></li>'


def _html_card(card: LatentCard) -> str:
    parts = [f'<section><h3>{html.escape(card.title)}</h3>']
    if card.explanation:
        parts.append(f"<p><em>{html.escape(card.explanation)}</em></p>")
    if card.members:
        members = ", ".join(f"latent {latent} ({weight:.3f})" for latent, weight in card.members)
        parts.append(f"<p>used most by: {html.escape(members)}</p>")
    parts.append("<ul>" + "".join(_html_context(c) for c in card.contexts) + "</ul></section>")
    return "".join(parts)


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]#|~!"})


def _markdown_text(text: str) -> str:
    """``text`` as literal Markdown: no tag, link, emphasis or table cell can come from the data.

    Renderers pass raw HTML through, so it is escaped as the HTML page does; Markdown's own
    punctuation is backslash-escaped; a newline would end the list item, so it is shown as ↵.
    """
    return html.escape(text, quote=False).translate(_MARKDOWN_SPECIAL).replace("\n", "\u21b5")


def _markdown_context(context: TokenContext) -> str:
    tokens = [_markdown_text(token) for token in context.tokens]
    tokens[context.position] = f"**{tokens[context.position]}**"
    return "".join(tokens)


def _markdown_card(card: LatentCard) -> str:
    lines = [f"### {_markdown_text(card.title)}", ""]
    if card.explanation:
        lines += [f"*{_markdown_text(card.explanation)}*", ""]
    if card.members:
        lines += ["used most by: " + ", ".join(f"latent {l} ({w:.3f})" for l, w in card.members), ""]
    for context in card.contexts:
        lines.append(f"- `{context.activation:.3f}` {_markdown_context(context)}")
    return "\n".join(lines + [""])


def write_context_page(
    out_dir: str | os.PathLike, sections: dict[str, list[LatentCard]], title: str = "Latent contexts"
) -> tuple[Path, Path]:
    """Write ``index.html`` and ``index.md`` into ``out_dir``; returns both paths."""
    if not sections:
        raise ValueError("sections is empty: pass {section title: cards}")
    out = Path(out_dir)
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}code{white-space:pre-wrap}"
        "mark{background:#8f8}li{margin:.2em 0}.act{color:#666;font-size:.8em}"
    )
    body = [f"<h1>{html.escape(title)}</h1>"]
    markdown = [f"# {_markdown_text(title)}", ""]
    for name, cards in sections.items():
        body.append(f"<h2>{html.escape(name)}</h2>" + "".join(_html_card(c) for c in cards))
        markdown += [f"## {_markdown_text(name)}", ""] + [_markdown_card(c) for c in cards]
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    html_path, md_path = out / "index.html", out / "index.md"
    atomic_write_bytes(html_path, page.encode("utf-8"))
    atomic_write_bytes(md_path, "\n".join(markdown).encode("utf-8"))
    return html_path, md_path
