"""Translating text with a trained :class:`~elman.models.seq2seq.Seq2Seq`: lines in, lines out.

Sources are cut into subword pieces, decoded in batches of similar length (greedy for a beam of
1, beam search otherwise; :mod:`elman.inference.search`) and the output pieces joined back into
plain text, in the input's order. Since padding never changes what the model computes, a line
gets the same translation alone or in any batch.

Bad input never stops a run: an empty (or blank) line translates to an empty line without
running the model; a character never seen in training is the unknown piece ``<unk>``; a line of
more than ``max_source_len`` pieces (250 by default) is cut to that many, with a warning naming
the line.

The model is a :class:`~elman.models.seq2seq.Seq2Seq` or an
:class:`~elman.inference.ensemble.EnsembleModel` of several; :func:`translate_nbest` gives the
K best of every line as :class:`Translation` values, and :func:`moses_lines` writes them in the
Moses n-best format (``ID ||| hypothesis ||| logprob=… pieces=… ||| score``)::

    0 ||| A dog runs through a grassy field. ||| logprob=-2.913502 pieces=9 ||| -1.248644
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

from elman.data.pair_batches import make_batch, pad_sources
from elman.data.subword import SubwordVocab
from elman.errors import ElmanError
from elman.inference.ensemble import EnsembleModel
from elman.inference.search import (
    DecodeConfig,
    Hypothesis,
    SearchModel,
    beam_search,
    greedy_search,
    max_lengths,
)
from elman.models.seq2seq import Seq2Seq
from elman.progress import Progress

Decoder = Seq2Seq | EnsembleModel  # one model, or several decoding as one
T = TypeVar("T")
SEPARATOR = " ||| "  # the Moses n-best field separator


@dataclass(frozen=True)
class Translation:
    """One hypothesis of a line: its text and the numbers that ranked it."""

    text: str  # detokenized plain text
    log_prob: float  # log P(Y | x), natural log, ``</s>`` included when it was written
    length: int  # |Y|: the output pieces, plus ``</s>`` when written (the length penalty's)
    score: float  # log_prob / ((5 + length) / 6)^α, α = length_penalty: what ranks the list


def decoder(model: Seq2Seq, ensemble: Sequence[Seq2Seq] = ()) -> Decoder:
    """``model`` alone, or an :class:`EnsembleModel` of it and ``ensemble``."""
    return EnsembleModel([model, *ensemble]) if ensemble else model


@torch.no_grad()
def _in_batches(
    model: Decoder,
    sources: Sequence[Sequence[int]],
    batch_size: int,
    what: str,
    decode_batch: Callable[[Sequence[Sequence[int]]], list[T]],
) -> list[T]:
    """``decode_batch`` over batches of sources of similar length, results in input order."""
    was_training = model.training
    model.eval()
    out: dict[int, T] = {}
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    with Progress(what, len(sources), unit="sentences") as progress:
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            out.update(zip(ids, decode_batch([sources[i] for i in ids]), strict=True))
            progress.update(len(ids))
    model.train(was_training)
    return [out[i] for i in range(len(sources))]


def _padded(
    sources: Sequence[Sequence[int]], decode: DecodeConfig, device: torch.device | str
) -> tuple[Tensor, Tensor, list[int]]:
    """The batch (B, S), its lengths (B,) on ``device`` and every source's output limit."""
    src, lengths = pad_sources(sources)
    src, lengths = src.to(device), lengths.to(device)
    return src, lengths, max_lengths(lengths, decode.max_len_ratio, decode.max_len_extra)


def translate_ids(
    model: Decoder,
    sources: Sequence[Sequence[int]],
    decode: DecodeConfig,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    *,
    what: str = "translating",
) -> list[list[int]]:
    """The 1-best output pieces of every source (lists of piece ids), in the input order:
    greedy for a beam of 1, else beam search.

    A beam search over a test set takes minutes on a CPU: ``what`` names it in the progress
    shown meanwhile (:mod:`elman.progress`)."""

    search = cast(SearchModel[Any, Any], model)  # either decodes through encode and step

    def one_best(batch: Sequence[Sequence[int]]) -> list[list[int]]:
        src, lengths, limit = _padded(batch, decode, device)
        if decode.beam == 1:
            return greedy_search(search, src, lengths, limit, decode.no_repeat_ngram)
        hyps = beam_search(
            search, src, lengths, decode.beam, limit, decode.length_penalty,
            no_repeat=decode.no_repeat_ngram,
        )  # fmt: skip
        return [h[0].tokens for h in hyps]

    return _in_batches(model, sources, batch_size, what, one_best)


def nbest_ids(
    model: Decoder,
    sources: Sequence[Sequence[int]],
    decode: DecodeConfig,
    n_best: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    *,
    what: str = "translating",
) -> list[list[Hypothesis]]:
    """The ``n_best`` (<= ``decode.beam``) best hypotheses of every source, best first, by
    beam search (a beam of 1 is greedy search with its log-probability)."""
    if not 1 <= n_best <= decode.beam:
        raise ElmanError(f"n_best must be between 1 and the beam size {decode.beam}, got {n_best}")

    search = cast(SearchModel[Any, Any], model)

    def k_best(batch: Sequence[Sequence[int]]) -> list[list[Hypothesis]]:
        src, lengths, limit = _padded(batch, decode, device)
        return beam_search(
            search, src, lengths, decode.beam, limit, decode.length_penalty, n_best,
            no_repeat=decode.no_repeat_ngram,
        )  # fmt: skip

    return _in_batches(model, sources, batch_size, what, k_best)


def encode_sources(vocab: SubwordVocab, lines: Sequence[str], max_len: int) -> list[list[int]]:
    """The source pieces of every line, each cut to ``max_len`` pieces (warning once per call,
    naming the first lines cut)."""
    sources = vocab.src.encode(lines)
    cut = [k + 1 for k, s in enumerate(sources) if len(s) > max_len]
    if cut:
        shown = ", ".join(map(str, cut[:5])) + (" …" if len(cut) > 5 else "")
        warnings.warn(
            f"{len(cut)} input line(s) longer than {max_len} subword pieces were cut to "
            f"{max_len} (line {shown}); split long sentences for a full translation",
            stacklevel=2,
        )
    return [s[:max_len] for s in sources]


def translate_lines(
    model: Decoder,
    vocab: SubwordVocab,
    lines: Sequence[str],
    decode: DecodeConfig,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    *,
    what: str = "translating",
) -> list[str]:
    """Plain-text translations of ``lines`` (blank lines give empty lines); ``what`` names
    the work in the progress shown."""
    real = [k for k, line in enumerate(lines) if line.strip()]
    sources = encode_sources(vocab, [lines[k] for k in real], decode.max_source_len)
    outputs = translate_ids(model, sources, decode, batch_size, device, what=what)
    text = [""] * len(lines)
    for k, pieces in zip(real, outputs, strict=True):
        text[k] = vocab.tgt.decode(pieces)
    return text


EMPTY = Translation("", 0.0, 0, 0.0)  # a blank line's one hypothesis: the model is not run


def translate_nbest(
    model: Decoder,
    vocab: SubwordVocab,
    lines: Sequence[str],
    decode: DecodeConfig,
    n_best: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    *,
    what: str = "translating",
) -> list[list[Translation]]:
    """Up to ``n_best`` translations of every line, best first (fewer only when the beam
    finished fewer); a blank line gets one empty translation with log P = 0, length 0."""
    real = [k for k, line in enumerate(lines) if line.strip()]
    sources = encode_sources(vocab, [lines[k] for k in real], decode.max_source_len)
    outputs = nbest_ids(model, sources, decode, n_best, batch_size, device, what=what)
    found: list[list[Translation]] = [[EMPTY] for _ in lines]
    for k, hyps in zip(real, outputs, strict=True):
        found[k] = [
            Translation(vocab.tgt.decode(h.tokens), h.log_prob, h.length, h.score) for h in hyps
        ]
    return found


def moses_lines(index: int, translations: Sequence[Translation]) -> list[str]:
    """The Moses n-best lines of input line ``index`` (0-based, as Moses numbers them)::

        ID ||| hypothesis ||| logprob=LOG_P pieces=|Y| ||| SCORE

    LOG_P is log P(Y | x) (natural log), |Y| the output pieces counting ``</s>``, SCORE the
    length-normalised score that ranks the list (:class:`Translation`). A ``|||`` inside a
    hypothesis would end its field: it is written ``&#124;&#124;&#124;`` (Moses's escape of
    ``|``); a single ``|`` is kept, so the text stays the text that BLEU scores.
    """
    return [
        SEPARATOR.join(
            [
                str(index),
                t.text.replace("|||", "&#124;" * 3),
                f"logprob={t.log_prob:.6f} pieces={t.length}",
                f"{t.score:.6f}",
            ]
        )
        for t in translations
    ]


@torch.no_grad()
def attention_map(
    model: Seq2Seq, source: Sequence[int], output: Sequence[int], device: torch.device | str
) -> Tensor:
    """The attention weights a_ti with which ``model`` writes ``output`` for ``source``:
    shape (|output| + 1, |source| + 1), rows y_1 … ``</s>``, columns x_1 … ``</s>``.

    Teacher-forced on the output, so the weights are those of the decoding that produced it.
    """
    batch = make_batch([source], [output]).to(device)
    model.eval()
    _, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    if weights is None:
        raise ValueError("this model has no attention")
    return weights[0].cpu()
