"""Tagging with a trained :class:`~elman.models.tagger.Tagger`: token lists in, tags out.

Sentences are batched by length (sorted, ``batch_size`` at a time) and the tags returned in the
input order; since padding never changes a prediction, a sentence gets the same tags alone or in
any batch. Unknown words need nothing special: they are ``<unk>`` to the word embedding and are
spelt by the character encoder like any other word; unknown characters are ``<unk>`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

import torch

from elman.data.conllu import Sentence
from elman.data.tagging import TaggerVocab
from elman.models.tagger import Tagger
from elman.train.tagger import Member, tag_distributions


def tag_sentences(
    model: Tagger,
    vocab: TaggerVocab,
    sentences: Sequence[Sequence[str]],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    ensemble: Sequence[Member] = (),
) -> list[list[str]]:
    """The predicted tags of every sentence (a list of words each); empty sentences get [].

    With ``ensemble`` (more trained taggers and their vocabularies) each word gets the tag
    of the members' mean distribution.
    """
    probs = tag_distributions([(model, vocab), *ensemble], sentences, batch_size, device)
    return [vocab.tags.decode(p.argmax(dim=1)) for p in probs]


def tag_lines(
    model: Tagger,
    vocab: TaggerVocab,
    lines: Iterable[str],
    out: TextIO,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    chunk: int = 1000,
    ensemble: Sequence[Member] = (),
) -> int:
    """Whitespace-tokenised sentences, one a line -> ``word/TAG word/TAG …`` lines.

    An empty (or blank) line is echoed as an empty line. Lines are read ``chunk`` at a time,
    so a long stream is tagged without holding it all. Returns the number of lines written.
    """
    written = 0
    for block in _chunks(lines, chunk):
        sentences = [line.split() for line in block]
        for words, tags in zip(
            sentences,
            tag_sentences(model, vocab, sentences, batch_size, device, ensemble),
            strict=True,
        ):
            out.write(" ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True)) + "\n")
            written += 1
    return written


def tag_conllu(
    model: Tagger,
    vocab: TaggerVocab,
    sentences: list[Sentence],
    column: str,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    ensemble: Sequence[Member] = (),
) -> list[Sentence]:
    """Fill ``column`` of every word of ``sentences`` with the predicted tag (in place)."""
    forms = [s.forms() for s in sentences]
    predicted = tag_sentences(model, vocab, forms, batch_size, device, ensemble)
    for sentence, tags in zip(sentences, predicted, strict=True):
        sentence.set_column(column, tags)
    return sentences


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
