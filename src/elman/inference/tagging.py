"""Tagging with a trained :class:`~elman.models.tagger.Tagger`: token lists in, tags out.

Sentences are batched by length (sorted, ``batch_size`` at a time) and the tags returned in the
input order; since padding never changes a prediction, a sentence gets the same tags alone or in
any batch. Unknown words need nothing special: they are ``<unk>`` to the word embedding and are
spelt by the character encoder like any other word; unknown characters are ``<unk>`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TextIO

import torch

from elman.data.conllu import Sentence
from elman.data.tagging import TaggerVocab, by_length, make_batch
from elman.models.tagger import Tagger
from elman.progress import Progress

Member = tuple[Tagger, TaggerVocab]  # a trained tagger and the vocabularies it reads


@torch.no_grad()
def tag_distributions(
    members: Sequence[Member],
    sentences: Sequence[Sequence[str]],
    batch_size: int,
    device: torch.device | str,
    *,
    what: str = "tagging",
) -> list[torch.Tensor]:
    """ŷ_t of every word, shape (n_i, K) per sentence (K tags; (0, K) for an empty one).

    With M members it is the mean of their distributions, ŷ_t = (1/M) Σ_m ŷ_t^(m): each
    member reads the sentences through its own vocabularies (they may differ, e.g. with other
    pretrained vectors); the tag sets must be equal. Sentences are batched in sorted-length
    order; padding never changes a prediction. ``what`` names the work in the progress shown
    (an ensemble over a large corpus takes a while).
    """
    num_tags = len(members[0][1].tags)
    out: list[torch.Tensor] = [torch.zeros(len(s), num_tags) for s in sentences]
    batches = by_length([len(s) for s in sentences], batch_size)
    with Progress(what, len(batches) * len(members), unit="batches") as progress:
        for model, vocab in members:
            was_training = model.training
            model.eval()
            for ids in progress.over(batches):
                batch = make_batch([sentences[i] for i in ids], vocab, index=ids).to(device)
                probs = model(batch).softmax(dim=2).cpu()  # (B, T, K)
                for i, row, n in zip(ids, probs, batch.lengths.tolist(), strict=True):
                    out[i] += row[:n] / len(members)
            model.train(was_training)
    return out


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


Tagging = Callable[[list[list[str]]], list[list[str]]]  # sentences (lists of words) -> tags


def tag_lines(tagger: Tagging, lines: Iterable[str], out: TextIO, chunk: int = 1000) -> int:
    """Whitespace-tokenised sentences, one a line -> ``word/TAG word/TAG …`` lines.

    An empty (or blank) line is echoed as an empty line. Lines are read ``chunk`` at a time,
    so a long stream is tagged without holding it all. Returns the number of lines written.
    ``tagger`` is e.g. ``elman.load(path).tag``.
    """
    written = 0
    for block in _chunks(lines, chunk):
        sentences = [line.split() for line in block]
        for words, tags in zip(sentences, tagger(sentences), strict=True):
            out.write(" ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True)) + "\n")
            written += 1
    return written


def tag_conllu(tagger: Tagging, sentences: list[Sentence], column: str) -> list[Sentence]:
    """Fill ``column`` of every word of ``sentences`` with the predicted tag (in place)."""
    predicted = tagger([s.forms() for s in sentences])
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
