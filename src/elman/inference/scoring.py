"""Sentence log-probabilities from neural language models, many sentences at a time.

The sentence convention of ``elman score`` (docs/lm.md): each sentence is scored on its own.
The model starts fresh, as after a sentence end (the RNN from a zero state reading the start id,
the NPLM with its whole window filled with the start id), and predicts every token of the
sentence, its end token included::

    targets      a    b    c    </s>        (the sentence's ids, the end id last)
    RNN inputs  <s>   a    b    c           (<s> = start_id, the <eos> id for word models)
    NPLM window <s> <s> <s> | a             (context_size 3), then <s> <s> a | b, …

The functions take each sentence's target ids and return each target's natural-log probability,
in the order the sentences were given.

**Batching the RNN.** Sentences are sorted by length (:func:`length_batches`) so that each batch
holds sentences of similar length, padded on the right into a (T, B) grid::

    sentences (targets)   [d e f </s>]  [a b </s>]  [c </s>]
    inputs  (T=4, B=3)    <s> <s> <s>               the start id in every column
                           d   a   c
                           e   b   ·                · = padding (id of the start token, unread)
                           f   ·   ·
    targets                d   a   c
                           e   b  </s>
                           f  </s>  ·
                          </s>  ·   ·

An RNN LM reads left to right, so position t's output depends only on the inputs at 0…t of its
own column: padding after a sentence's end never reaches one of its scores, and padded positions
are not read out. A long batch is run in time slices of at most ``max_tokens // B`` steps, the
state carried from one slice to the next (the same recurrence, so the same numbers), so the
(T, B, V) scores never exceed ``max_tokens`` positions: a 100,000-word line costs time, not memory.

**The NPLM** needs no padding: each target has its own window, and the windows of all sentences
are scored ``max_tokens`` at a time.

Batching changes only the order in which floating-point products are summed, so batched scores
equal one-sentence-at-a-time scores to rounding (tests/inference/test_scoring.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from elman.data.batching import Batch
from elman.data.windows import WindowBatch
from elman.models.nplm import NPLM
from elman.models.rnnlm import RNNLM

# Positions scored in one forward pass: the (tokens, V) log-probabilities in float32 plus their
# log_softmax stay under about 128 MB (2 x 4 bytes x 2**24).
SCORE_BUDGET = 2**24


def tokens_per_step(vocab_size: int, budget: int = SCORE_BUDGET) -> int:
    """Positions per forward pass for a ``vocab_size``-way output: 16 … 8192."""
    return max(16, min(8192, budget // max(1, vocab_size)))


def length_batches(
    lengths: Sequence[int], *, max_tokens: int, max_sentences: int
) -> list[list[int]]:
    """Indices of the sentences in batches of similar length.

    Sorted by length (stable, so equal lengths keep their input order); a batch holds at most
    ``max_sentences`` sentences and at most ``max_tokens`` padded positions (its longest
    length times its size). A sentence longer than ``max_tokens`` is a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted: the newest sentence is the batch's longest
        if current and (len(current) >= max_sentences or longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _check(sentences: Sequence[Sequence[int]]) -> None:
    if any(len(s) == 0 for s in sentences):
        raise ValueError("every sentence has at least its end token")


@torch.no_grad()
def rnn_sentence_logprobs(
    model: nn.Module,
    sentences: Sequence[Sequence[int]],
    start_id: int,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 64,
    max_tokens: int = 2048,
) -> list[np.ndarray]:
    """log P of every target id of every sentence under an RNN LM (module docstring).

    ``model(inputs (T, B), state) -> (logits (T, B, V), state)`` is the language-model contract;
    ``sentences`` are target ids (the end id last); ``batch_size`` sentences at most per batch,
    ``max_tokens`` positions at most per forward pass (:func:`tokens_per_step` of V).
    Returns one float64 array per sentence, in the given order.
    """
    _check(sentences)
    model.eval()
    out: list[np.ndarray] = [np.empty(0)] * len(sentences)
    lengths = [len(s) for s in sentences]
    for batch in length_batches(lengths, max_tokens=max_tokens, max_sentences=batch_size):
        scores = _rnn_batch(model, [sentences[i] for i in batch], start_id, device, max_tokens)
        for i, s in zip(batch, scores, strict=True):
            out[i] = s
    return out


def _rnn_batch(
    model: nn.Module,
    sentences: list[Sequence[int]],
    start_id: int,
    device: torch.device | str,
    max_tokens: int,
) -> list[np.ndarray]:
    B, T = len(sentences), max(len(s) for s in sentences)
    inputs = torch.full((T, B), start_id, dtype=torch.long)  # (T, B)
    targets = torch.full((T, B), start_id, dtype=torch.long)  # (T, B), padding never read
    for b, s in enumerate(sentences):
        ids = torch.as_tensor(s, dtype=torch.long)
        targets[: len(s), b] = ids
        inputs[1 : len(s), b] = ids[:-1]
    inputs, targets = inputs.to(device), targets.to(device)
    step = max(1, max_tokens // B)
    state, rows = None, []
    for t0 in range(0, T, step):
        logits, state = model(inputs[t0 : t0 + step], state)  # (t, B, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        rows.append(logp.gather(-1, targets[t0 : t0 + step].unsqueeze(-1)).squeeze(-1))  # (t, B)
    grid = torch.cat(rows).double().cpu().numpy()  # (T, B)
    return [grid[: len(s), b].copy() for b, s in enumerate(sentences)]


@torch.no_grad()
def nplm_sentence_logprobs(
    model: NPLM,
    sentences: Sequence[Sequence[int]],
    start_id: int,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 64,
    max_tokens: int = 2048,
) -> list[np.ndarray]:
    """log P of every target id of every sentence under an NPLM (module docstring).

    ``model(contexts (B, n−1)) -> logits (B, V)``; ``batch_size`` is kept for the same call as
    :func:`rnn_sentence_logprobs` (the NPLM's batches are ``max_tokens`` windows, whatever the
    sentences). Returns one float64 array per sentence, in the given order.
    """
    del batch_size  # windows, not sentences, are what an NPLM batches
    _check(sentences)
    model.eval()
    n = model.context_size  # NPLM.context_size: the window's n − 1 ids
    lengths = [len(s) for s in sentences]
    scores: list[Tensor] = []
    # Windows of a group of sentences at a time, so no more than about max_tokens are built.
    for group in _groups(lengths, max_tokens):
        contexts, targets = _windows([sentences[i] for i in group], n, start_id)
        contexts, targets = contexts.to(device), targets.to(device)
        for at in range(0, len(targets), max_tokens):
            logits = model(contexts[at : at + max_tokens])  # (b, V)
            logp = torch.log_softmax(logits.float(), dim=-1)
            scores.append(logp.gather(-1, targets[at : at + max_tokens, None]).squeeze(-1))
    flat = torch.cat(scores).double().cpu().numpy()  # every target, sentence after sentence
    return [part.copy() for part in np.split(flat, np.cumsum(lengths)[:-1])]


def _groups(lengths: Sequence[int], max_tokens: int) -> list[range]:
    """Consecutive runs of sentences holding about ``max_tokens`` targets (at least one each)."""
    groups, start, total = [], 0, 0
    for i, n in enumerate(lengths):
        if total and total + n > max_tokens:
            groups.append(range(start, i))
            start, total = i, 0
        total += n
    groups.append(range(start, len(lengths)))
    return groups


def _windows(sentences: list[Sequence[int]], n: int, start_id: int) -> tuple[Tensor, Tensor]:
    """The contexts (N, n) and targets (N,) of every target of ``sentences``."""
    contexts, targets = [], []
    for s in sentences:
        ids = torch.as_tensor(s, dtype=torch.long)
        padded = torch.cat([torch.full((n,), start_id, dtype=torch.long), ids])  # (n + L,)
        contexts.append(padded.unfold(0, n, 1)[: len(s)])  # row t = padded[t : t + n], (L, n)
        targets.append(ids)
    return torch.cat(contexts), torch.cat(targets)


@torch.no_grad()
def rnn_history_logprobs(
    model: RNNLM,
    stream: Sequence[int],
    k: int,
    pad_id: int,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 512,
) -> np.ndarray:
    """log P(w_t | w_{t−k} … w_{t−1}) of every target w_1 … w_{N−1} of ``stream`` under an RNN
    LM that reads only the last ``k`` tokens, from a zero state (the lecture's claim that an
    RNN uses more than an n-gram's window: the perplexity as its history is cut).

    The RNN reads each window (``model.hidden``) and only the last h_t goes through the output
    layer (the factored output's log ŷ, or W_S and a softmax), so a long window costs the
    recurrence, not k × V scores. A target nearer the stream's start than ``k`` reads
    ``pad_id`` (the ``<eos>`` id: a sentence boundary) before its history. Returns float64,
    shape (N − 1,).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    model.eval()
    ids = torch.as_tensor(list(stream), dtype=torch.long)
    padded = torch.cat([torch.full((k,), pad_id, dtype=torch.long), ids])  # (k + N,)
    windows = padded.unfold(0, k, 1)[1 : len(ids)]  # row t − 1: the k tokens before w_t
    targets = ids[1:]
    out = []
    for at in range(0, len(targets), batch_size):
        x = windows[at : at + batch_size].t().contiguous().to(device)  # (k, B)
        h, _ = model.hidden(x)
        last = h[-1].float()  # (B, H): the state after reading the window
        if model.factored is not None:
            logp = model.factored.log_prob(last)
        else:
            logp = torch.log_softmax(model.decoder(last).float(), dim=-1)
        y = targets[at : at + batch_size].to(device)
        out.append(logp.gather(1, y[:, None]).squeeze(1).double().cpu())
    return torch.cat(out).numpy()


def sentence_segment(
    model: nn.Module, sentence: Sequence[int], start_id: int, device: torch.device | str = "cpu"
) -> Batch | WindowBatch:
    """One sentence as a segment of :mod:`elman.inference.dynamic` (``elman score --dynamic``):
    an NPLM's windows, or an RNN LM's (T, 1) inputs from the start id and its targets."""
    _check([sentence])
    if isinstance(model, NPLM):
        contexts, targets = _windows([sentence], model.context_size, start_id)
        return WindowBatch(contexts.to(device), targets.to(device), len(targets))
    targets = torch.as_tensor(sentence, dtype=torch.long)
    inputs = torch.cat([torch.tensor([start_id]), targets[:-1]])
    mask = torch.ones(len(targets), 1, dtype=torch.bool)
    batch = Batch(inputs.view(-1, 1), targets.view(-1, 1), mask, len(targets))
    return batch.to(device)
