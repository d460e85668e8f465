"""Batched sentence scores equal one-sentence-at-a-time scores: padding never changes a result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elman.inference.scoring import (
    length_batches,
    nplm_sentence_logprobs,
    rnn_sentence_logprobs,
    tokens_per_step,
)
from elman.models.nplm import NPLM
from elman.models.rnnlm import RNNLM, RNNLMConfig

V, START = 11, 1


def sentences(seed: int = 0, n: int = 9) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    # lengths 1 … 12, the end id (START) last, as the task layer builds them
    return [[*rng.integers(2, V, size=int(k)).tolist(), START] for k in rng.integers(0, 12, n)]


def reference_rnn(model: RNNLM, sentence: list[int]) -> np.ndarray:
    """One sentence alone, in one forward pass from a fresh state."""
    inputs = torch.tensor([START, *sentence[:-1]]).view(-1, 1)  # (T, 1)
    with torch.no_grad():
        logits, _ = model(inputs, None)
    logp = torch.log_softmax(logits.float(), -1)[:, 0]  # (T, V)
    return logp[torch.arange(len(sentence)), torch.tensor(sentence)].double().numpy()


def reference_nplm(model: NPLM, sentence: list[int]) -> np.ndarray:
    n, out = model.context_size, []
    history = [START] * n
    for w in sentence:
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([history[-n:]])), -1)[0]
        out.append(float(logp[w]))
        history.append(w)
    return np.array(out)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_rnn_batched_equals_one_at_a_time(cell: str) -> None:
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(vocab_size=V, cell=cell, embedding_dim=6, hidden_size=5)).eval()
    sents = sentences()
    batched = rnn_sentence_logprobs(model, sents, START, batch_size=64, max_tokens=4096)
    alone = [rnn_sentence_logprobs(model, [s], START, batch_size=1)[0] for s in sents]
    for b, a, s in zip(batched, alone, sents, strict=True):
        assert b.shape == (len(s),)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b, reference_rnn(model, s), rtol=0, atol=1e-5)


def test_rnn_time_slices_carry_the_state() -> None:
    """A long sentence scored a few steps at a time (a 100,000-word line never builds a
    (T, B, V) grid) gives the scores of one pass."""
    torch.manual_seed(1)
    model = RNNLM(RNNLMConfig(vocab_size=V, embedding_dim=6, hidden_size=5)).eval()
    sents = sentences(seed=3)
    sliced = rnn_sentence_logprobs(model, sents, START, batch_size=4, max_tokens=8)
    for got, s in zip(sliced, sents, strict=True):
        np.testing.assert_allclose(got, reference_rnn(model, s), rtol=0, atol=1e-5)


def test_nplm_batched_equals_one_at_a_time() -> None:
    torch.manual_seed(0)
    model = NPLM(V, context_size=3, embedding_dim=4, hidden_size=6).eval()
    sents = sentences(seed=5)
    batched = nplm_sentence_logprobs(model, sents, START, max_tokens=7)  # windows cross groups
    for got, s in zip(batched, sents, strict=True):
        np.testing.assert_allclose(got, reference_nplm(model, s), rtol=0, atol=1e-5)
        alone = nplm_sentence_logprobs(model, [s], START, max_tokens=4096)[0]
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-5)


def test_length_batches_sort_and_respect_both_limits() -> None:
    lengths = [5, 1, 3, 9, 1, 3, 20]
    batches = length_batches(lengths, max_tokens=10, max_sentences=2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # similar lengths together
    for b in batches:
        assert len(b) <= 2
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 10  # 20 alone


def test_tokens_per_step_bounds() -> None:
    assert tokens_per_step(10) == 8192 and tokens_per_step(10**9) == 16
    assert tokens_per_step(10_000) == 2**24 // 10_000


def test_empty_sentence_is_refused() -> None:
    model = NPLM(V, context_size=2, embedding_dim=4, hidden_size=6)
    with pytest.raises(ValueError):
        nplm_sentence_logprobs(model, [[]], START)


def test_history_cut_to_k_tokens() -> None:
    """log P(w_t | the last k tokens) equals reading those k tokens alone from a zero state
    (``<eos>`` padding before the stream's start), for every k, batched or not."""
    from elman.inference.scoring import rnn_history_logprobs

    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(vocab_size=13, cell="lstm", embedding_dim=6, hidden_size=5)).eval()
    stream = [0, 3, 5, 7, 2, 0, 9, 11, 4, 0]
    for k in (1, 3, len(stream)):
        cut = rnn_history_logprobs(model, stream, k=k, pad_id=0, batch_size=4)
        assert cut.shape == (len(stream) - 1,)
        for t in range(1, len(stream)):
            history = ([0] * k + stream[:t])[-k:]
            with torch.no_grad():
                logits, _ = model(torch.tensor(history)[:, None])
            expected = torch.log_softmax(logits[-1, 0], -1)[stream[t]].item()
            assert cut[t - 1] == pytest.approx(expected, abs=1e-5)
    whole = rnn_history_logprobs(model, stream, k=len(stream), pad_id=0, batch_size=100)
    np.testing.assert_allclose(whole, cut, atol=1e-6)  # the batch size changes nothing
