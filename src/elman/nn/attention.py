"""Attention over the states of a source sentence: additive (Bahdanau) and multiplicative (Luong).

A decoder state s_t (the *query*) scores every encoder state h_i of its source sentence (the
*memory*), the scores become weights by a softmax over the real source positions, and the
context is the weighted mean of the encoder states::

    e_ti = score(s_t, h_i)                                  i = 1 … S
    a_ti = exp(e_ti) / Σ_{j real} exp(e_tj)   (a_ti = 0 at padded positions i)
    c_t  = Σ_i a_ti h_i

Two scores:

* additive (Bahdanau, Cho & Bengio 2015):   score(s, h) = v_a^T tanh(W_a s + U_a h)
* multiplicative, "general" (Luong, Pham & Manning 2015):   score(s, h) = s^T W_a h

The part that depends on the source alone (U_a h_i, resp. W_a h_i) is computed once per
sentence by ``precompute`` and reused at every decoder step (and by every beam).

Padding: ``mask`` (B, S) is True at real source positions; padded positions get weight exactly 0,
so whatever the padding holds never reaches the context. Every row needs at least one real
position (a translation source always has its ``</s>``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last axis of ``scores`` (B, S) restricted to ``mask`` (B, S) True."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class AdditiveAttention(nn.Module):
    """score(s, h) = v_a^T tanh(W_a s + U_a h) (Bahdanau et al. 2015).

    Args:
        query_size: size of the decoder state s.
        key_size: size of an encoder state h (2H for a bidirectional encoder).
        attention_size: size of the hidden layer, the rows of W_a and U_a.

    Parameters: ``query.weight`` = W_a (A, Q), ``key.weight`` = U_a (A, K) and ``key.bias``,
    ``v.weight`` = v_a^T (1, A).
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_size, attention_size, bias=False)
        self.key = nn.Linear(key_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def precompute(self, memory: Tensor) -> Tensor:
        """U_a h_i for every source position: memory (B, S, K) -> keys (B, S, A)."""
        return self.key(memory)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query s_t (B, Q), keys (B, S, A), memory h (B, S, K), mask (B, S)
        -> context c_t (B, K), weights a_t (B, S)."""
        hidden = torch.tanh(keys + self.query(query).unsqueeze(1))  # (B, S, A)
        scores = self.v(hidden).squeeze(2)  # (B, S)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


class MultiplicativeAttention(nn.Module):
    """score(s, h) = s^T W_a h (Luong et al. 2015, "general").

    Args:
        query_size: size of the decoder state s.
        key_size: size of an encoder state h.

    Parameters: ``weight`` = W_a (Q, K), initialised U(-1/√K, 1/√K) like a linear layer.
    """

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(query_size, key_size))
        bound = 1.0 / math.sqrt(key_size)
        nn.init.uniform_(self.weight, -bound, bound)

    def precompute(self, memory: Tensor) -> Tensor:
        """W_a h_i for every source position: memory (B, S, K) -> keys (B, S, Q)."""
        return memory @ self.weight.t()

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query s_t (B, Q), keys (B, S, Q), memory h (B, S, K), mask (B, S)
        -> context c_t (B, K), weights a_t (B, S)."""
        scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)  # (B, S): s_t^T (W_a h_i)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


ATTENTIONS = ("additive", "multiplicative")


def build_attention(
    kind: str, query_size: int, key_size: int, attention_size: int
) -> AdditiveAttention | MultiplicativeAttention:
    """``additive`` or ``multiplicative`` (``attention_size`` is used by additive only)."""
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, attention_size)
    if kind == "multiplicative":
        return MultiplicativeAttention(query_size, key_size)
    raise ValueError(f"attention={kind!r} is not accepted; use one of {', '.join(ATTENTIONS)}")
