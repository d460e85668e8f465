"""Translating text with a trained :class:`~elman.models.seq2seq.Seq2Seq`: lines in, lines out.

Sources are cut into subword pieces, decoded in batches of similar length (greedy for a beam of
1, beam search otherwise; :mod:`elman.inference.search`) and the output pieces joined back into
plain text, in the input's order. Since padding never changes what the model computes, a line
gets the same translation alone or in any batch.

Bad input never stops a run: an empty (or blank) line translates to an empty line without
running the model; a character never seen in training is the unknown piece ``<unk>``; a line of
more than ``max_source_len`` pieces (250 by default) is cut to that many, with a warning naming
the line.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from elman.data.pair_batches import make_batch, pad_sources
from elman.data.subword import SubwordVocab
from elman.inference.search import DecodeConfig, beam_search, greedy_search, max_lengths
from elman.models.seq2seq import Seq2Seq
from elman.progress import Progress


@torch.no_grad()
def translate_ids(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    decode: DecodeConfig,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    *,
    what: str = "translating",
) -> list[list[int]]:
    """The 1-best output pieces of every source (lists of piece ids), in the input order.

    A beam search over a test set takes minutes on a CPU: ``what`` names it in the progress
    shown meanwhile (:mod:`elman.progress`)."""
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in sources]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    with Progress(what, len(sources), unit="sentences") as progress:
        for start in range(0, len(order), batch_size):
            ids = order[start : start + batch_size]
            out_batch = _decode_batch(model, [sources[i] for i in ids], decode, device)
            for i, tokens in zip(ids, out_batch, strict=True):
                out[i] = tokens
            progress.update(len(ids))
    model.train(was_training)
    return out


def _decode_batch(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    decode: DecodeConfig,
    device: torch.device | str,
) -> list[list[int]]:
    """The 1-best output pieces of one batch of sources, greedy or by beam search."""
    src, lengths = pad_sources(sources)
    src, lengths = src.to(device), lengths.to(device)
    limit = max_lengths(lengths, decode.max_len_ratio, decode.max_len_extra)
    if decode.beam == 1:
        return greedy_search(model, src, lengths, limit)
    hyps = beam_search(model, src, lengths, decode.beam, limit, decode.length_penalty)
    return [h[0].tokens for h in hyps]


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
    model: Seq2Seq,
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
